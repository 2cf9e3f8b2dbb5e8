"""Every fix we print that changes Google's configuration works: provoke the error in the emulated clouds, apply the
printed gcloud commands to the emulator's configuration, and the same exchange then succeeds.

The emulator evaluates attribute mappings and conditions as Google does (CEL), so a fix that, say, remaps
attribute.aws_role to something the setup's condition and principalSet binding do not expect fails here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import diagnosis, errors, fixes, resource_names
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.supplier import Boto3Supplier
from tests.emulated_gcloud import (
    AlreadyInState,
    EmulatedGcloud,
    assert_gcloud_parses,
    gcloud_commands,
    is_mutating,
)
from tests.fixtures import JWT_PROVIDER, emulator_hosts, jwt_provider

REQUEST = google.auth.transport.requests.Request()
ROLE = "arn:aws:sts::123456789012:assumed-role/wif-role"


@dataclass(frozen=True)
class Scenario:
    """How to break the emulated project for one catalogue rule, and which identity and settings meet it."""

    rule: tuple[str, str]  # (step, rule name) in diagnosis.py
    breaks: Callable[[Any, dict[str, Any]], None]
    extras: dict[str, Any] | None = None
    identity: str = "role"  # role (wif-role) | long_role (an MWAA-like role with a long name and session)
    federation: str = "sigv4"  # jwt: the OIDC provider `gcp-wif setup --federation jwt` creates, then broken


def _long_role_setup(control, info):
    """What `gcp-wif setup --aws-role-name <the long role>` creates: a condition and a principalSet binding on
    the role ARN, and Google's default mapping (so google.subject is the whole, too long, session ARN)."""
    role = f"arn:aws:sts::{info['aws_account_id']}:assumed-role/{info['long_role_arn'].rsplit('/', 1)[1]}"
    control.set_provider(attribute_condition=f"attribute.aws_role=='{role}'")
    control.add_binding(info["service_account"], "roles/iam.workloadIdentityUser",
                        f"principalSet://iam.googleapis.com/{_pool(info)}/attribute.aws_role/{role}")


def _jwt(breaks):
    """Set up the jwt route's OIDC provider (as setup creates it, binding included), then break it."""
    def run(control, info):
        jwt_provider(control, info)
        breaks(control, info)
    return run


def _jwt_provider(**fields):
    return lambda c, i: c.set_provider(provider_id=JWT_PROVIDER, **fields)


def _pool(info):
    return f"projects/{info['project_number']}/locations/global/workloadIdentityPools/{info['pool_id']}"


SCENARIOS = {
    "provider_disabled": Scenario(("sts_exchange", "invalid_target"), lambda c, i: c.set_provider(disabled=True)),
    "provider_deleted": Scenario(("sts_exchange", "invalid_target"), lambda c, i: c.set_provider(deleted=True)),
    "pool_disabled": Scenario(("sts_exchange", "invalid_target"), lambda c, i: c.set_pool(disabled=True)),
    "pool_deleted": Scenario(("sts_exchange", "invalid_target"), lambda c, i: c.set_pool(False, deleted=True)),
    "condition_excludes_role": Scenario(
        ("sts_exchange", "attribute_condition"),
        lambda c, i: c.set_provider(attribute_condition="attribute.aws_role == 'arn:aws:sts::1:assumed-role/x'")),
    "condition_on_unmapped_attribute": Scenario(
        ("sts_exchange", "attribute_condition"),
        lambda c, i: c.set_provider(attribute_condition="attribute.team == 'data'")),
    "subject_over_127_bytes": Scenario(("sts_exchange", "subject_too_long"), _long_role_setup,
                                       identity="long_role"),
    "aws_account_not_trusted": Scenario(("sts_exchange", "account_not_allowed"),
                                        lambda c, i: c.set_provider(aws_account_id="111111111111")),
    "sts_api_disabled": Scenario(("sts_exchange", "service_disabled"),
                                 lambda c, i: c.configure({"disabled_services": ["sts.googleapis.com"]})),
    "iam_api_disabled": Scenario(("impersonation", "service_disabled"),
                                 lambda c, i: c.configure({"disabled_services": ["iamcredentials.googleapis.com"]})),
    "binding_missing": Scenario(("impersonation", "permission_denied"),
                                lambda c, i: c.remove_bindings(i["service_account"])),
    "chain_hop_missing": Scenario(
        ("impersonation", "permission_denied"), lambda c, i: c.remove_bindings(i["target_service_account"]),
        extras={"impersonation_chain": "{service_account},{target_service_account}"}),
    "lifetime_over_an_hour": Scenario(("impersonation", "lifetime"), lambda c, i: None,
                                      extras={"lifetime_seconds": 7200}),
    "service_account_disabled": Scenario(("impersonation", "sa_disabled"),
                                         lambda c, i: c.add_service_account(i["service_account"], disabled=True)),
    # federation: jwt — the OIDC provider trusting the AWS account's issuer
    "jwt_provider_disabled": Scenario(("sts_exchange", "invalid_target"), _jwt(_jwt_provider(disabled=True)),
                                      federation="jwt"),
    "jwt_audience_not_allowed": Scenario(
        ("sts_exchange", "jwt_audience"),
        _jwt(lambda c, i: c.set_provider(provider_id=JWT_PROVIDER, oidc={
            "issuer_uri": i["aws_issuer_url"], "allowed_audiences": ["https://example.test/other"],
            "jwks_json": None})), federation="jwt"),
    "jwt_issuer_of_another_account": Scenario(
        ("sts_exchange", "jwt_issuer"),
        _jwt(lambda c, i: c.set_provider(provider_id=JWT_PROVIDER, oidc={
            "issuer_uri": c.aws_issuer(i["untrusted_aws_account_id"]), "allowed_audiences": [],
            "jwks_json": None})), federation="jwt"),
    "jwt_condition_excludes_role": Scenario(
        ("sts_exchange", "attribute_condition"),
        _jwt(_jwt_provider(attribute_condition="assertion.sub == 'arn:aws:iam::1:role/x'")), federation="jwt"),
    "jwt_subject_over_127_bytes": Scenario(
        ("sts_exchange", "subject_too_long"),
        _jwt(_jwt_provider(attribute_mapping={
            "google.subject": "assertion.sub + '/' + assertion.sub + '/' + assertion.sub + '/' + assertion.sub",
            "attribute.aws_role": "assertion.sub",
            "attribute.aws_account": "assertion['https://sts.amazonaws.com/'].aws_account"})), federation="jwt"),
    "jwt_binding_missing": Scenario(("impersonation", "permission_denied"),
                                    _jwt(lambda c, i: c.remove_bindings(i["service_account"])), federation="jwt"),
}


def _supplier(identity: str, aws_env, role_supplier) -> Boto3Supplier:
    if identity == "role":
        return role_supplier()
    assumed = boto3.client("sts").assume_role(RoleArn=aws_env["long_role_arn"],
                                              RoleSessionName="airflow-mwaa-task-session-0123456789-abcdefghij")
    credentials = assumed["Credentials"]
    session = boto3.session.Session(aws_access_key_id=credentials["AccessKeyId"],
                                    aws_secret_access_key=credentials["SecretAccessKey"],
                                    aws_session_token=credentials["SessionToken"], region_name=aws_env["aws_region"])
    return Boto3Supplier(lambda: session, identity_key="long-role", description="long role")


def _fresh_token(settings, supplier) -> str:
    from airflow_provider_gcp_wif import credentials as wif_credentials

    wif_credentials.clear_cache()
    credentials = get_credentials(settings, supplier)
    credentials.refresh(REQUEST)
    return credentials.token


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_applying_the_printed_fix_makes_the_exchange_work(name, emulator, settings_for, role_supplier, aws_env):
    scenario = SCENARIOS[name]
    info = emulator.info
    extras = {k: v.format(**info) if isinstance(v, str) else v for k, v in (scenario.extras or {}).items()}
    if scenario.federation == "jwt":
        extras.update(provider_id=JWT_PROVIDER, federation="jwt")
    settings = settings_for(**extras)
    supplier = _supplier(scenario.identity, aws_env, role_supplier)
    scenario.breaks(emulator.control, info)

    with pytest.raises(errors.WifExchangeError) as caught:
        _fresh_token(settings, supplier)
    error = caught.value
    assert error.step == scenario.rule[0], str(error)
    commands = [c for c in gcloud_commands(error.fix) if is_mutating(c)]
    assert commands, f"the fix changes nothing: {error.fix}"
    assert _verbs(commands) == _verbs_of_rule(*scenario.rule, scenario.federation), \
        "the error came from another catalogue rule"
    if scenario.federation == "jwt":  # several jwt rules share update-oidc: the answer must be this rule's
        answer = diagnosis.GoogleAnswer(error.status, error.code or "", error.reason, ())
        rules = fixes.STS_RULES if error.step == "sts_exchange" else fixes.IAM_RULES
        assert next(n for n, matches, _ in rules if matches(answer)) == scenario.rule[1], str(error)

    gcloud = EmulatedGcloud(emulator.control)
    for command in commands:
        # e.g. "undelete" offered next to "update --no-disabled": gcloud would say so and change nothing
        with contextlib.suppress(AlreadyInState):
            gcloud.run(command)
    assert _fresh_token(settings, supplier)


_VERBS = {"create", "create-aws", "update", "update-aws", "update-oidc", "undelete", "enable", "add-iam-policy-binding", "allow",
          "set-policy"}


def _verbs(commands: list[str]) -> set[str]:
    """``iam service-accounts add-iam-policy-binding`` etc.: the command without its resource and flags."""
    result = set()
    for command in commands:
        words = command.split()[1:]
        end = next(i for i, w in enumerate(words) if w in _VERBS)
        result.add(" ".join(words[: end + 1]))
    return result


def _verbs_of_rule(step: str, rule: str, federation: str = "sigv4") -> set[str]:
    return _verbs([c for c in gcloud_commands(_rule_fix(step, rule, federation)) if is_mutating(c)])


def _rule_fix(step: str, rule: str, federation: str = "sigv4") -> str:
    rules = fixes.STS_RULES if step == "sts_exchange" else fixes.IAM_RULES
    context = _JWT_CONTEXT if federation == "jwt" else _CONTEXT
    return next(fix for name, _, fix in rules if name == rule)(*context)


_SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
_EXTRAS = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider",
           "impersonation_chain": f"{_SA},{_SA}"}
#: (settings, caller) that the fixes name, per route.
_CONTEXT = (WifSettings.from_extras(_EXTRAS),
            diagnosis.Caller(arn_lookup=lambda: "arn:aws:sts::123456789012:assumed-role/wif-role/session"))


_JWT_CONTEXT = (
    WifSettings.from_extras({**_EXTRAS, "provider_id": JWT_PROVIDER, "federation": "jwt"}),
    dataclasses.replace(_CONTEXT[1], jwt_claims_lookup=lambda: {
        "iss": "https://0000.tokens.sts.global.api.aws", "sub": "arn:aws:iam::123456789012:role/wif-role",
        "https://sts.amazonaws.com/": {"aws_account": "123456789012"}}))
#: Rules only the sigv4 route can meet (Google replays the signed AWS request) and only the jwt route can meet.
SIGV4_ONLY = {"signature_expired", "signature_mismatch", "aws_token_expired", "aws_key_invalid", "request_format",
              "subject_unparseable", "account_not_allowed"}


def test_every_rule_whose_fix_changes_google_configuration_has_a_scenario():
    """Per route: a rule the route can meet whose fix changes Google's configuration has a scenario on that route
    (on jwt only where its fix differs from sigv4's: the other fixes are the same commands, proven once)."""
    needed = set()
    for step, rules in (("sts_exchange", fixes.STS_RULES), ("impersonation", fixes.IAM_RULES)):
        for name, _, fix in rules:
            sigv4, jwt = fix(*_CONTEXT), fix(*_JWT_CONTEXT)
            if not name.startswith("jwt_") and any(is_mutating(c) for c in gcloud_commands(sigv4)):
                needed.add((step, name, "sigv4"))
            if name not in SIGV4_ONLY and jwt != sigv4 and any(is_mutating(c) for c in gcloud_commands(jwt)):
                needed.add((step, name, "jwt"))
    assert needed == {(*s.rule, s.federation) for s in SCENARIOS.values()}


def test_the_long_subject_fix_keeps_googles_default_aws_role_mapping():
    """The mapping it prints gives, for every partition, the attribute.aws_role that the setup's condition and
    principalSet binding name (evaluated by the emulator's CEL, as Google would)."""
    from airflow_provider_gcp_wif.testing import cel
    from tests.emulated_gcloud import parse_arg_dict

    fix = _rule_fix("sts_exchange", "subject_too_long")
    mapping_flag = next(c for c in gcloud_commands(fix) if "update-aws" in c).split("--attribute-mapping=", 1)[1]
    mapping = parse_arg_dict(mapping_flag.strip('"'))
    for partition in ("aws", "aws-us-gov", "aws-cn"):
        arn = f"arn:{partition}:sts::123456789012:assumed-role/AmazonMWAA-env-{'x' * 40}/{'s' * 64}"
        subject, attributes, _ = cel.map_assertion(mapping, {"arn": arn, "account": "123456789012", "userid": "u"})
        assert attributes["aws_role"] == arn.rsplit("/", 1)[0]
        assert len(subject.encode()) <= 127


@pytest.mark.parametrize("partition", ["aws-us-gov", "aws-cn"])
def test_fixes_name_the_callers_partition_and_universe(partition):
    """A GovCloud or China worker is told to bind and admit its own partition's role ARN."""
    settings = WifSettings.from_extras({**_EXTRAS, "impersonation_chain": _SA, "universe_domain": "example.test"},
                                       allowed_endpoint_hosts="example.test")
    caller = diagnosis.Caller(arn_lookup=lambda: f"arn:{partition}:sts::123456789012:assumed-role/wif-role/session")
    texts = " ".join(fix(settings, caller) for _, _, fix in fixes.STS_RULES + fixes.IAM_RULES)
    assert f"arn:{partition}:sts::123456789012:assumed-role/wif-role" in texts
    assert "arn:aws:sts::" not in texts
    assert "principalSet://iam.example.test/projects/734501234567/" in texts
    assert "iam.googleapis.com/projects" not in texts


def test_one_default_aws_role_mapping_everywhere():
    """The setup, the fixes and the emulated Google agree on Google's default attribute.aws_role mapping."""
    from airflow_provider_gcp_wif.cli.setup_plan import ATTRIBUTE_MAPPING
    from airflow_provider_gcp_wif.testing import cel

    assert ATTRIBUTE_MAPPING["attribute.aws_role"] == resource_names.AWS_ROLE_MAPPING == cel.AWS_ROLE_DEFAULT


def test_in_another_universe_the_printed_binding_is_the_one_that_works(emulator, aws_env, role_supplier):
    """Audience, pool and principal follow universe_domain: the emulated Google of universe example.test only
    knows //iam.example.test/ names, and the binding the fix prints for it makes impersonation work."""
    from airflow_provider_gcp_wif.config import WifSettings

    info = emulator.info
    emulator.control.configure({"universe_domain": "example.test"})
    emulator.control.remove_bindings(info["service_account"])
    settings = WifSettings.from_extras({
        "project_number": info["project_number"], "pool_id": info["pool_id"], "provider_id": info["provider_id"],
        "impersonation_chain": info["service_account"], "universe_domain": "example.test",
        "sts_endpoint": info["sts_endpoint"], "iam_endpoint": info["iam_endpoint"], "num_retries": 0,
    }, allowed_endpoint_hosts=f"example.test,{emulator_hosts(info)}")
    assert settings.audience.startswith("//iam.example.test/projects/")
    with pytest.raises(errors.WifExchangeError) as caught:
        _fresh_token(settings, role_supplier())
    assert caught.value.step == "impersonation"
    commands = [c for c in gcloud_commands(caught.value.fix) if is_mutating(c)]
    assert any("principalSet://iam.example.test/projects/" in c for c in commands)
    gcloud = EmulatedGcloud(emulator.control)
    for command in commands:
        gcloud.run(command)
    assert _fresh_token(settings, role_supplier())


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed")
def test_every_command_in_every_fix_parses_in_real_gcloud(tmp_path):
    """The commands the oracle applies are also the ones gcloud accepts (flags, positional arguments)."""
    context = (_CONTEXT[0].replace(lifetime_seconds=7200), _CONTEXT[1])
    lines = sorted({c.replace("ORG_ID", "1234567").replace("PROJECT_ID", "wif-demo-project")
                    for _, _, fix in fixes.STS_RULES + fixes.IAM_RULES
                    for c in gcloud_commands(fix(*context))})
    assert_gcloud_parses(lines, tmp_path)
