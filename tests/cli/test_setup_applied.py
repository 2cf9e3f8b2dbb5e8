"""`gcp-wif setup`'s gcloud commands and Terraform, applied to an EMPTY emulated project, make the exchange work.

The emulated Google evaluates the provider's attribute mapping and condition (CEL) and checks IAM on service
accounts and buckets for the federated principal, so a setup that creates a condition its own mapping cannot meet,
a binding on a principalSet the mapping never produces, or a bucket grant to the wrong member fails here.
"""

from __future__ import annotations

import json
import re
import shlex

import boto3
import google.auth.exceptions
import google.auth.transport.requests
import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import credentials as wif_credentials
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.supplier import Boto3Supplier
from airflow_provider_gcp_wif.testing import cel
from airflow_provider_gcp_wif.testing.aws import LONG_ROLE_NAME
from tests.emulated_gcloud import ACCOUNTS_CONSTRAINT, EmulatedGcloud, empty_project, parse_arg_dict
from tests.fixtures import emulator_hosts

from .running import run_cli

REQUEST = google.auth.transport.requests.Request()
BASE = ["setup", "--project-id", "wif-demo-project", "--project-number", "734501234567", "--pool-id", "aws-pool",
        "--provider-id", "aws-provider", "--aws-account-id", "123456789012"]
OTHER_BUCKET = "someone-elses-bucket"


def connection_extra(output: str, fmt: str) -> dict:
    if fmt == "terraform":
        value = re.search(r'output "gcp_wif_connection" \{.*?value\s+= ("(?:[^"\\]|\\.)*")', output, re.S).group(1)
        return json.loads(json.loads(value))["extra"]
    line = next(line for line in output.splitlines() if line.startswith("# export AIRFLOW_CONN_GCP_WIF_DEFAULT="))
    return json.loads(shlex.split(line[2:])[1].split("=", 1)[1])["extra"]


def apply(emulator, output: str, fmt: str, gcloud: EmulatedGcloud) -> None:
    if fmt == "terraform":
        gcloud.apply_terraform(output)
    else:
        gcloud.run_script(output)


def token_for(info, extra: dict, supplier: Boto3Supplier, **more) -> str:
    values = {k: v for k, v in extra.items() if k != "aws_conn_id"}
    values.update(sts_endpoint=info["sts_endpoint"], iam_endpoint=info["iam_endpoint"], num_retries=0, **more)
    wif_credentials.clear_cache()
    settings = WifSettings.from_extras(values, allowed_endpoint_hosts=emulator_hosts(info))
    credentials = wif_credentials.get_credentials(settings, supplier)
    credentials.refresh(REQUEST)
    return credentials.token


def list_objects(info, bucket: str, token: str) -> int:
    return requests.get(f"{info['storage_host']}/storage/v1/b/{bucket}/o", timeout=30,
                        headers={"Authorization": f"Bearer {token}"}).status_code


def long_role_supplier(aws_env) -> Boto3Supplier:
    assumed = boto3.client("sts").assume_role(RoleArn=aws_env["long_role_arn"], RoleSessionName="s" * 64)
    creds = assumed["Credentials"]
    session = boto3.session.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds[
        "SecretAccessKey"], aws_session_token=creds["SessionToken"], region_name=aws_env["aws_region"])
    return Boto3Supplier(lambda: session, identity_key="long-role", description="long role")


@pytest.mark.parametrize("fmt", ["gcloud", "terraform"])
def test_service_account_setup_with_a_bucket_grant(fmt, emulator, aws_env, role_supplier):
    info = emulator.info
    empty_project(emulator.control, buckets=(info["bucket"], OTHER_BUCKET))
    code, out, err = run_cli(*BASE, "--aws-role-name", "wif-role", "--bucket", info["bucket"],
                             "--lifetime-over-hour", "--format", fmt)
    assert code == 0, err
    apply(emulator, out, fmt, EmulatedGcloud(emulator.control))
    extra = connection_extra(out, fmt)
    assert extra["impersonation_chain"] == "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
    token = token_for(info, extra, role_supplier(), lifetime_seconds=7200)
    assert list_objects(info, info["bucket"], token) == 200
    assert list_objects(info, OTHER_BUCKET, token) == 403


@pytest.mark.parametrize("fmt", ["gcloud", "terraform"])
def test_direct_resource_access_grants_the_roles_principal_set_on_the_bucket(fmt, emulator, aws_env,
                                                                               role_supplier):
    info = emulator.info
    empty_project(emulator.control, buckets=(info["bucket"], OTHER_BUCKET))
    code, out, err = run_cli(*BASE, "--aws-role-name", "wif-role", "--direct-access", "--bucket", info["bucket"],
                             "--format", fmt)
    assert code == 0, err
    assert "service-accounts" not in out and "google_service_account" not in out
    apply(emulator, out, fmt, EmulatedGcloud(emulator.control))
    extra = connection_extra(out, fmt)
    assert "impersonation_chain" not in extra
    token = token_for(info, extra, role_supplier())
    assert token.startswith("ya29.emu-fed-")  # the federated token itself
    assert list_objects(info, info["bucket"], token) == 200
    assert list_objects(info, OTHER_BUCKET, token) == 403


@pytest.mark.parametrize("fmt", ["gcloud", "terraform"])
def test_a_role_whose_sessions_exceed_127_bytes_still_gets_in(fmt, emulator, aws_env):
    """MWAA-like long execution-role names: setup maps a short google.subject and keeps attribute.aws_role."""
    info = emulator.info
    empty_project(emulator.control)
    code, out, err = run_cli(*BASE, "--aws-role-name", LONG_ROLE_NAME, "--format", fmt)
    assert code == 0, err
    apply(emulator, out, fmt, EmulatedGcloud(emulator.control))
    assert token_for(info, connection_extra(out, fmt), long_role_supplier(aws_env))


@pytest.mark.parametrize("fmt", ["gcloud", "terraform"])
@pytest.mark.parametrize("organization", [True, False])
def test_org_restrictions_keep_what_the_organization_already_allows(fmt, organization, emulator, role_supplier):
    """Another team's AWS account stays allowed after our setup, for the organization and for our project."""
    info = emulator.info
    empty_project(emulator.control)
    gcloud = EmulatedGcloud(emulator.control)
    gcloud.policies[(f"organizations/{gcloud.organization_id}", ACCOUNTS_CONSTRAINT)] = {
        "values": ["999999999999"], "inherit": False}
    args = [*BASE, "--aws-role-name", "wif-role", "--org-restrictions", "--format", fmt]
    if organization:
        args += ["--organization-id", gcloud.organization_id]
    code, out, err = run_cli(*args)
    assert code == 0, err
    apply(emulator, out, fmt, gcloud)
    assert set(gcloud.effective_allowed(ACCOUNTS_CONSTRAINT)) == {"999999999999", "123456789012"}
    assert "999999999999" in gcloud.policies[(f"organizations/{gcloud.organization_id}", ACCOUNTS_CONSTRAINT)][
        "values"]
    assert token_for(info, connection_extra(out, fmt), role_supplier())


def test_seed_variables_are_the_defaults_of_setups_flags(monkeypatch):
    seed = {"GCP_PROJECT_NUMBER": "734501234567", "GCP_WORKLOAD_ID": "seed-pool", "GCP_WORKLOAD_PROVIDER": "seed-aws",
            "GCP_SERVICE_ACCOUNT_EMAIL": "seed-sa@wif-demo-project.iam.gserviceaccount.com",
            "AWS_ACCOUNT_ID": "210987654321", "AWS_ROLE_NAME": "seed-role"}
    for key, value in seed.items():
        monkeypatch.setenv(key, value)
    code, out, err = run_cli("setup", "--project-id", "wif-demo-project")
    assert code == 0, err
    assert "workload-identity-pools create seed-pool" in out
    assert "providers create-aws seed-aws" in out and "--account-id=210987654321" in out
    assert ("principalSet://iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/"
            "seed-pool/attribute.aws_role/arn:aws:sts::210987654321:assumed-role/seed-role") in out
    assert "add-iam-policy-binding seed-sa@wif-demo-project.iam.gserviceaccount.com" in out
    _, flagged, _ = run_cli("setup", "--project-id", "wif-demo-project", "--pool-id", "flag-pool")
    assert "workload-identity-pools create flag-pool" in flagged


def test_universe_domain_names_the_audience_pool_and_principal():
    code, out, _ = run_cli(*BASE, "--aws-role-name", "wif-role", "--universe-domain", "example-universe.test")
    assert code == 0
    assert "principalSet://iam.example-universe.test/projects/734501234567/" in out
    assert "iam.googleapis.com/projects" not in out
    assert '"universe_domain": "example-universe.test"' in out


# -- partitions: the printed condition and mapping admit the partition's own ARNs ------------------------------

_ROLE = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-", min_size=1,
                max_size=64)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(partition=st.sampled_from(["aws", "aws-us-gov", "aws-cn"]), role=_ROLE, session=_ROLE,
       by_arn=st.booleans(), other_partition=st.sampled_from(["aws", "aws-us-gov", "aws-cn"]))
def test_every_partition_gets_a_condition_and_binding_its_sessions_meet(partition, role, session, by_arn,
                                                                        other_partition):
    args = ["setup", "--project-id", "wif-demo-project", "--project-number", "734501234567"]
    if by_arn:
        args += [f"--aws-role-name=arn:{partition}:iam::123456789012:role/path/{role}"]
    else:
        args += [f"--aws-role-name={role}", "--aws-account-id", "123456789012", "--aws-partition", partition]
    code, out, err = run_cli(*args)
    assert code == 0, err
    provider = next(line for line in out.splitlines() if "create-aws" in line)
    words = shlex.split(provider)
    mapping = parse_arg_dict(next(w for w in words if w.startswith("--attribute-mapping=")).split("=", 1)[1])
    condition = next(w for w in words if w.startswith("--attribute-condition=")).split("=", 1)[1]
    member = next(w for w in shlex.split(next(line for line in out.splitlines()
                                              if "add-iam-policy-binding" in line)) if w.startswith("--member="))

    def admitted(arn_partition: str) -> bool:
        arn = f"arn:{arn_partition}:sts::123456789012:assumed-role/{role}/{session}"
        assertion = {"arn": arn, "account": "123456789012", "userid": "AROA:x"}
        subject, attributes, groups = cel.map_assertion(mapping, assertion)
        assert len(subject.encode()) <= 127
        return cel.condition_holds(condition, assertion, subject, attributes, groups) and member.endswith(
            f"/attribute.aws_role/{attributes['aws_role']}")

    assert admitted(partition)
    if other_partition != partition:
        assert not admitted(other_partition)


# -- --federation jwt: the printed mapping, condition and binding admit exactly the role's JWTs ----------------

_PATH = st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+=,.@_-", min_size=1, max_size=40),
                 max_size=3).map(lambda parts: "/" + "".join(f"{p}/" for p in parts))


def jwt_claims(partition: str, account: str, path: str, role: str) -> dict:
    """The claims of a GetWebIdentityToken JWT of a session of the role (AWS IAM User Guide, "Understanding token
    claims"): ``sub`` is the role's IAM ARN with its path, whatever the session."""
    arn = f"arn:{partition}:iam::{account}:role{path}{role}"
    return {"iss": "https://issuer.example", "aud": "x", "sub": arn, "iat": 1, "exp": 301, "jti": "j",
            "https://sts.amazonaws.com/": {"aws_account": account, "principal_id": arn, "source_region": "us-east-1"}}


@settings(derandomize=True, max_examples=80, deadline=None)
@given(partition=st.sampled_from(["aws", "aws-us-gov", "aws-cn"]), path=_PATH, role=_ROLE, other_role=_ROLE,
       other_path=_PATH, other_account=st.sampled_from(["123456789012", "210987654321"]))
def test_jwt_setup_admits_exactly_the_roles_tokens_with_a_subject_under_127_bytes(partition, path, role, other_role,
                                                                                  other_path, other_account):
    arn = f"arn:{partition}:iam::123456789012:role{path}{role}"
    code, out, err = run_cli("setup", "--project-id", "wif-demo-project", "--project-number", "734501234567",
                             "--federation", "jwt", f"--aws-role-name={arn}")
    assert code == 0, err
    words = shlex.split(next(line for line in out.splitlines() if "create-oidc" in line))
    mapping = parse_arg_dict(next(w for w in words if w.startswith("--attribute-mapping=")).split("=", 1)[1])
    condition = next(w for w in words if w.startswith("--attribute-condition=")).split("=", 1)[1]
    member = next(w for w in shlex.split(next(line for line in out.splitlines()
                                              if "add-iam-policy-binding" in line)) if w.startswith("--member="))

    def admitted(claims: dict) -> bool:
        subject, attributes, groups = cel.map_assertion(mapping, claims)
        holds = cel.condition_holds(condition, claims, subject, attributes, groups)
        if holds:
            assert len(subject.encode()) <= 127
        return holds and member.endswith(f"/attribute.aws_role/{attributes['aws_role']}")

    assert admitted(jwt_claims(partition, "123456789012", path, role))
    other = (other_account, other_path, other_role)
    if other != ("123456789012", path, role):
        assert not admitted(jwt_claims(partition, *other))


@pytest.mark.parametrize("fmt", ["gcloud", "terraform"])
def test_jwt_setup_applied_to_an_empty_project_and_the_aws_account_lets_the_role_in(fmt, emulator, aws_env,
                                                                                    role_supplier):
    """The AWS side too: the fixture role `no_jwt_role_arn` has no sts:GetWebIdentityToken until the printed policy
    is put; Terraform enables outbound identity federation itself (so the account starts with it off)."""
    info = emulator.info
    empty_project(emulator.control, buckets=(info["bucket"], OTHER_BUCKET))
    if fmt == "terraform":
        emulator.control.set_aws_outbound_federation(False)
    admin = boto3.session.Session(region_name=aws_env["aws_region"])
    role_arn = aws_env["no_jwt_role_arn"]
    code, out, err = run_cli(*BASE, "--aws-role-name", role_arn, "--federation", "jwt", "--bucket", info["bucket"],
                             "--format", fmt)
    assert code == 0, err
    gcloud = EmulatedGcloud(emulator.control, aws=admin, aws_endpoint=aws_env["aws_endpoint"])
    try:
        apply(emulator, out, fmt, gcloud)
        provider = emulator.control.get_config()["pools"]["aws-pool"]["providers"]["aws-provider"]
        assert provider["oidc"]["issuer_uri"] == emulator.control.aws_issuer()
        extra = connection_extra(out, fmt)
        assert extra["federation"] == "jwt"
        token = token_for(info, extra, role_supplier(role_arn))
        assert list_objects(info, info["bucket"], token) == 200
        assert list_objects(info, OTHER_BUCKET, token) == 403
    finally:
        admin.client("iam", endpoint_url=aws_env["aws_endpoint"]).delete_role_policy(
            RoleName=role_arn.rsplit("/", 1)[1], PolicyName="gcp-wif-web-identity-token")


def test_jwt_setup_without_its_role_policy_is_refused_by_aws(emulator, aws_env, role_supplier):
    """The printed IAM policy is what lets the role ask for the JWT: the same script without it fails at AWS."""
    info = emulator.info
    empty_project(emulator.control)
    role_arn = aws_env["no_jwt_role_arn"]
    code, out, _ = run_cli(*BASE, "--aws-role-name", role_arn, "--federation", "jwt")
    assert code == 0
    without_policy = "\n".join(line for line in out.splitlines() if not line.startswith("aws iam put-role-policy"))
    admin = boto3.session.Session(region_name=aws_env["aws_region"])
    EmulatedGcloud(emulator.control, aws=admin, aws_endpoint=aws_env["aws_endpoint"]).run_script(without_policy)
    with pytest.raises(google.auth.exceptions.RefreshError, match="sts:GetWebIdentityToken"):
        token_for(info, connection_extra(out, "gcloud"), role_supplier(role_arn))


def test_jwt_direct_access_grants_the_roles_principal_set_on_the_bucket(emulator, aws_env, role_supplier):
    info = emulator.info
    empty_project(emulator.control, buckets=(info["bucket"], OTHER_BUCKET))
    role_arn = aws_env["no_jwt_role_arn"]
    code, out, err = run_cli(*BASE, "--aws-role-name", role_arn, "--federation", "jwt", "--direct-access",
                             "--bucket", info["bucket"])
    assert code == 0, err
    admin = boto3.session.Session(region_name=aws_env["aws_region"])
    try:
        EmulatedGcloud(emulator.control, aws=admin, aws_endpoint=aws_env["aws_endpoint"]).run_script(out)
        extra = connection_extra(out, "gcloud")
        assert "impersonation_chain" not in extra
        token = token_for(info, extra, role_supplier(role_arn))
        assert token.startswith("ya29.emu-fed-")  # the federated token itself
        assert list_objects(info, info["bucket"], token) == 200
        assert list_objects(info, OTHER_BUCKET, token) == 403
    finally:
        admin.client("iam", endpoint_url=aws_env["aws_endpoint"]).delete_role_policy(
            RoleName=role_arn.rsplit("/", 1)[1], PolicyName="gcp-wif-web-identity-token")
