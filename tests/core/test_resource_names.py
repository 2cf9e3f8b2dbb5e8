"""One place names Google's and AWS's resources: the settings, the fix texts and setup agree on every audience,
member and ARN, in every Google universe and AWS partition."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import diagnosis, fixes, resource_names
from airflow_provider_gcp_wif.cli.setup_args import SetupArgs, build_setup_plan
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.errors import WifConfigError

NUMBERS = st.from_regex(r"[1-9][0-9]{0,11}", fullmatch=True)
POOL_IDS = st.from_regex(r"[a-z][a-z0-9-]{3,31}", fullmatch=True).filter(lambda s: not s.startswith("gcp-"))
UNIVERSES = st.sampled_from(["googleapis.com", "s3nsapis.fr", "apis-tpclp.goog"])
PARTITIONS = st.sampled_from(["aws", "aws-cn", "aws-us-gov"])
ACCOUNTS = st.from_regex(r"[0-9]{12}", fullmatch=True)
ROLE_NAMES = st.from_regex(r"[A-Za-z0-9+=,.@_-]{1,64}", fullmatch=True)
PATHS = st.sampled_from(["/", "/service-role/", "/a/b/"])


@settings(derandomize=True, max_examples=60, deadline=None)
@given(NUMBERS, POOL_IDS, POOL_IDS, UNIVERSES)
def test_the_settings_audience_is_the_provider_name_and_parses_back(number, pool, provider, universe):
    extras = {"project_number": number, "pool_id": pool, "provider_id": provider, "universe_domain": universe}
    from_parts = WifSettings.from_extras(extras, allowed_endpoint_hosts=universe)
    name = resource_names.provider_name(number, pool, provider, universe)
    assert from_parts.audience == name
    from_name = WifSettings.from_extras({"audience": name, "universe_domain": universe},
                                        allowed_endpoint_hosts=universe)
    assert (from_name.project_number, from_name.pool_id, from_name.provider_id) == (number, pool, provider)
    assert name.startswith(resource_names.pool_name(number, pool, universe) + "/providers/")
    assert resource_names.https_audience(name) == "https:" + name


@settings(derandomize=True, max_examples=60, deadline=None)
@given(ACCOUNTS, ROLE_NAMES, PARTITIONS, PATHS, NUMBERS, POOL_IDS, UNIVERSES)
def test_arns_and_members_keep_the_partition_and_the_universe(account, role, partition, path, number, pool, universe):
    session = resource_names.assumed_role_arn(account, role, partition) + "/session-1"
    role_set = resource_names.assumed_role_arn(account, role, partition)
    assert resource_names.role_arn_of(session) == role_set
    assert resource_names.account_of(session) == account == resource_names.account_of(
        resource_names.iam_role_arn(account, role, partition, path))
    assert resource_names.role_name_of(session) == role == resource_names.role_name_of(
        resource_names.iam_role_arn(account, role, partition, path))
    member = resource_names.principal_member(number, pool, session, universe)
    assert member == resource_names.role_member(number, pool, role_set, universe)
    assert member == f"principalSet://iam.{universe}/projects/{number}/locations/global/workloadIdentityPools/{pool}" \
                     f"/attribute.aws_role/arn:{partition}:sts::{account}:assumed-role/{role}"


def test_the_fixes_name_the_members_and_audiences_of_resource_names():
    """The fix texts print the same strings: the member to bind (sigv4 and jwt) and the jwt audience to allow."""
    settings_ = WifSettings.from_extras({"project_number": "123", "pool_id": "pool-1", "provider_id": "prov-1",
                                         "universe_domain": "s3nsapis.fr"}, allowed_endpoint_hosts="s3nsapis.fr")
    caller = "arn:aws-cn:sts::111122223333:assumed-role/wif/s"
    sigv4 = diagnosis.Caller(arn_lookup=lambda: caller)
    assert f'--member="{resource_names.principal_member("123", "pool-1", caller, "s3nsapis.fr")}"' in \
        fixes.fix_permission_denied(settings_, sigv4)
    sub = "arn:aws-cn:iam::111122223333:role/wif"
    jwt_settings = settings_.replace(federation="jwt")
    jwt = diagnosis.Caller(jwt_claims_lookup=lambda: {"sub": sub})
    assert f'--member="{resource_names.role_member("123", "pool-1", sub, "s3nsapis.fr")}"' in \
        fixes.fix_permission_denied(jwt_settings, jwt)
    assert f"--allowed-audiences={resource_names.https_audience(settings_.audience)}`" in \
        fixes.fix_jwt_audience(jwt_settings, jwt)


# -- one grammar per name (issue #25): setup, the settings, the secrets backend and the fix texts read the same ---

@settings(derandomize=True, max_examples=60, deadline=None)
@given(PARTITIONS, ACCOUNTS, PATHS, ROLE_NAMES)
def test_every_role_arn_setup_writes_is_one_the_one_grammar_reads_back(partition, account, path, name):
    arn = resource_names.iam_role_arn(account, name, partition, path)
    match = resource_names.ROLE_ARN.fullmatch(arn)
    assert match and (match["partition"], match["account"], match["path"], match["name"]) == (
        partition, account, path, name)
    assert resource_names.is_role_arn(arn)
    assert resource_names.role_name_of(arn) == name


@pytest.mark.parametrize("text", [
    "arn:aws:iam::12345678901\u0662:role/wif",  # a Unicode digit (\\d took it)
    "arn:awsiso:iam::123456789012:role/wif",  # not a partition's name
    "arn:AWS:iam::123456789012:role/wif",
    "arn:aws:iam::123456789012:role/w!f",  # not a role name
    "arn:aws:iam::123456789012:role/wif\n",  # $ matched before a trailing newline
    "arn:aws:iam::123456789012:user/wif",
    "arn:aws:iam::123456789012:role/",
    "arn:aws:sts::123456789012:assumed-role/wif/session",
    "wif",
])
def test_what_is_not_a_role_arn(text):
    assert not resource_names.is_role_arn(text)


@pytest.mark.parametrize("partition", ["aws-iso", "aws-iso-b", "aws-iso-f", "aws-eusc"])
def test_arns_of_every_partition_are_read_as_before(partition):
    """What the provider reads (a caller's ARN, the secrets backend's aws_role_arn) may be of any AWS partition, as
    before one grammar; only what setup writes is limited to the partitions it knows."""
    assert partition not in resource_names.AWS_PARTITIONS
    assert resource_names.is_role_arn(f"arn:{partition}:iam::123456789012:role/ops/wif")
    session = f"arn:{partition}:sts::123456789012:assumed-role/wif/s"
    assert resource_names.role_arn_of(session) == f"arn:{partition}:sts::123456789012:assumed-role/wif"
    assert resource_names.account_of(session) == "123456789012"
    assert resource_names.role_name_of(session) == "wif"
    with pytest.raises(WifConfigError) as refused:
        build_setup_plan(SetupArgs(project_id="my-project", project_number="123456789012",
                                   aws_role_name=f"arn:{partition}:iam::123456789012:role/wif"))
    assert refused.value.field == "--aws-role-name" and partition in str(refused.value)


@pytest.mark.parametrize(("text", "number"), [
    ("734501234567", True), ("1", True), ("9" * 20, True), ("9" * 21, False), ("", False), ("12a", False),
    ("\u0661\u0662\u0663", False), ("123\n", False), ("my-project", False),
])
def test_the_project_number_grammar(text, number):
    assert bool(resource_names.PROJECT_NUMBER.fullmatch(text)) is number
