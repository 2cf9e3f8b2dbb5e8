"""``WifSettings.replace``: ``dataclasses.replace`` plus the parser steps of the changed fields only.

The oracle is what ``replace`` meant before it parsed fields one by one: the whole settings, as extras, with the
changes on top, validated again by ``WifSettings.from_extras`` under the same allow-list. Hypothesis draws changes
to any key (valid, invalid, empty, ``None``, legacy-prefixed); the copy, or the error (field and message), must be
the same either way.
"""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import fields
from airflow_provider_gcp_wif.config import KNOWN_KEYS, WifSettings
from airflow_provider_gcp_wif.constants import ALLOWED_HOSTS_ENV, LEGACY_PREFIX
from airflow_provider_gcp_wif.errors import WifConfigError

ALLOWED = "sts.corp.example,.psc.corp.example,corp.example"
SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
BASE = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider"}
BASES = [
    BASE,
    {**BASE, "impersonation_chain": f"a@p.iam.gserviceaccount.com,{SA}", "lifetime_seconds": 7200,
     "quota_project_id": "billing-project", "project": "my-project", "federation": "jwt"},
    {**BASE, "sts_endpoint": "https://sts.corp.example/v1/token", "aws_region": "eu-west-1", "num_retries": 0},
    {**BASE, "universe_domain": "corp.example", "scope": "openid,email"},
]
CREDENTIAL_CONFIG = json.dumps({
    "type": "external_account", "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
    "audience": "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/"
    "providers/aws-provider", "quota_project_id": "file-quota-project",
    "service_account_impersonation_url": f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{SA}"
    ":generateAccessToken", "service_account_impersonation": {"token_lifetime_seconds": 1800},
})
CANDIDATES: dict[str, list[object]] = {
    "aws_conn_id": ["aws_other", "with space", 42],
    "project_number": ["734501234567", "111111111111", "my-project"],
    "pool_id": ["aws-pool", "other-pool", "gcp-reserved", "X"],
    "provider_id": ["aws-provider", "other-provider"],
    "audience": ["//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/"
                 "aws-pool/providers/aws-provider", "//iam.googleapis.com/projects/1/locations/global/"
                 "workloadIdentityPools/other-pool/providers/p-123", "not an audience"],
    "credential_config": [CREDENTIAL_CONFIG, "{not json", json.dumps({"type": "service_account"})],
    "impersonation_chain": [SA, "not an email", ["x@y.iam.gserviceaccount.com"], 7],
    "project": ["other-project", "Bad_Project"],
    "scope": ["https://www.googleapis.com/auth/devstorage.read_only", "https://evil.example/x", ["openid"]],
    "lifetime_seconds": [1, 3600, "7200s", 43201, True, "soon"],
    "quota_project_id": ["billing-project", "Bad_Project"],
    "aws_region": ["us-east-1", "cn-north-1", "nowhere"],
    "universe_domain": ["googleapis.com", "corp.example", "evil.example", "not a domain"],
    "sts_endpoint": ["https://sts.corp.example/v1/token", "https://x.psc.corp.example", "https://evil.example/t",
                     "http://sts.googleapis.com", "http://127.0.0.1:8080/v1/token", "ftp://x"],
    "iam_endpoint": ["https://iamcredentials.corp.example", "https://evil.example", "http://localhost:9/v1/x"],
    "num_retries": [0, "20", 21, -1],
    "federation": ["sigv4", "jwt", "JWT", "oidc"],
}
assert set(CANDIDATES) == set(KNOWN_KEYS)


def _as_extras(s: WifSettings) -> dict[str, object]:
    extras: dict[str, object] = {key: getattr(s, key) for key in KNOWN_KEYS if hasattr(s, key)}
    extras["scope"] = ",".join(s.scopes)
    return extras


def _outcome(build):
    try:
        return build()
    except WifConfigError as err:
        return ("error", err.field, str(err))


@st.composite
def changes(draw):
    keys = draw(st.lists(st.sampled_from(KNOWN_KEYS), min_size=1, max_size=3, unique=True))
    result = {}
    for key in keys:
        name = LEGACY_PREFIX + key if draw(st.integers(0, 9)) == 0 else key
        result[name] = draw(st.sampled_from([*CANDIDATES[key], "", None]))
    return result


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), change=changes())
def test_replace_equals_revalidating_the_whole_settings_with_the_changes(base, change):
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ALLOWED_HOSTS_ENV, ALLOWED)
        original = WifSettings.from_extras(base, conn_id="c", allowed_endpoint_hosts=ALLOWED)
        expected = _outcome(lambda: WifSettings.from_extras({**_as_extras(original), **change}, conn_id="c",
                                                            allowed_endpoint_hosts=ALLOWED))
        got = _outcome(lambda: original.replace(**change))
    assert got == expected
    if isinstance(got, WifSettings):
        assert got.conn_id == "c"


def test_an_endpoint_outside_the_allow_list_is_refused_on_replace(monkeypatch):
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "sts.corp.example")
    s = WifSettings.from_extras(BASE)
    for key, url in (("sts_endpoint", "https://evil.example/v1/token"), ("iam_endpoint", "https://evil.example"),
                     ("universe_domain", "evil.example")):
        with pytest.raises(WifConfigError) as caught:
            s.replace(**{key: url})
        assert caught.value.field == key
    assert s.replace(sts_endpoint="https://sts.corp.example").sts_endpoint == "https://sts.corp.example/v1/token"


def test_a_new_universe_re_checks_the_endpoints_it_keeps(monkeypatch):
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "corp.example")
    s = WifSettings.from_extras(BASE)
    with pytest.raises(WifConfigError) as caught:  # the audience still names googleapis.com
        s.replace(universe_domain="corp.example")
    assert caught.value.field == "audience"
    with pytest.raises(WifConfigError) as caught:  # sts.googleapis.com is outside the new universe: not allowed
        s.replace(universe_domain="corp.example", audience=s.audience.replace("googleapis.com", "corp.example"))
    assert caught.value.field == "sts_endpoint"
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "corp.example,.googleapis.com")
    moved = s.replace(universe_domain="corp.example", audience=s.audience.replace("googleapis.com", "corp.example"))
    assert (moved.universe_domain, moved.sts_endpoint) == ("corp.example", s.sts_endpoint)


def test_an_unrelated_change_re_checks_nothing_else(monkeypatch):
    """Settings built under a deployment's allow-list keep their endpoints when something else changes, even where
    this process's environment would not allow them (the checked values are not parsed again), and nothing but the
    changed field differs."""
    s = WifSettings.from_extras({**BASE, "sts_endpoint": "https://sts.corp.example/v1/token",
                                 "universe_domain": "corp.example",
                                 "audience": "//iam.corp.example/projects/734501234567/locations/global/"
                                 "workloadIdentityPools/aws-pool/providers/aws-provider"},
                                allowed_endpoint_hosts="sts.corp.example,corp.example")
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "")
    for key, value, attribute, expected in (("project", "other-project", "project", "other-project"),
                                            ("impersonation_chain", SA, "impersonation_chain", (SA,)),
                                            ("scope", "openid", "scopes", ("openid",)),
                                            ("federation", "jwt", "federation", "jwt"),
                                            ("quota_project_id", "", "quota_project_id", None)):
        other = s.replace(**{key: value})
        assert getattr(other, attribute) == expected
        unchanged = {a: getattr(s, a) for a in vars(s) if a != attribute}
        assert {a: getattr(other, a) for a in unchanged} == unchanged


def test_replace_warns_when_a_lifetime_is_set_without_impersonation(caplog):
    s = WifSettings.from_extras(BASE, allowed_endpoint_hosts="")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_gcp_wif.config"):
        s.replace(lifetime_seconds=7200)
    assert "lifetime_seconds applies to impersonated tokens only" in caplog.text


def test_every_field_names_a_parser_step_and_re_checks_known_fields():
    from airflow_provider_gcp_wif.extras_parser import STEPS

    for field in fields.FIELDS:
        assert field.parser in STEPS, field.key
        assert set(field.rechecks) <= set(KNOWN_KEYS), field.key


def test_an_unrelated_change_does_not_read_the_allow_list(monkeypatch, caplog):
    s = WifSettings.from_extras(BASE, allowed_endpoint_hosts="")
    monkeypatch.setenv(ALLOWED_HOSTS_ENV, "bad host!")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_gcp_wif.config"):
        s.replace(project="other-project", impersonation_chain=SA)
    assert "allowed_endpoint_hosts" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="airflow_provider_gcp_wif.config"):
        s.replace(iam_endpoint="https://iamcredentials.googleapis.com")
    assert "allowed_endpoint_hosts" in caplog.text  # a changed endpoint is checked against it


def test_the_full_parse_warns_about_a_lifetime_before_checking_the_endpoints(caplog):
    with caplog.at_level(logging.WARNING, logger="airflow_provider_gcp_wif.config"), \
            pytest.raises(WifConfigError) as caught:
        WifSettings.from_extras({**BASE, "lifetime_seconds": 7200, "sts_endpoint": "https://evil.example"},
                                allowed_endpoint_hosts="")
    assert caught.value.field == "sts_endpoint"
    assert "lifetime_seconds applies to impersonated tokens only" in caplog.text
