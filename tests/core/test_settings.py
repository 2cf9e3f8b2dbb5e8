"""WifSettings: every way settings arrive, normalised; every malformed one refused with the field named."""

from __future__ import annotations

import json
import logging

import pytest

from airflow_provider_gcp_wif.config import CLOUD_PLATFORM_SCOPE, WifSettings
from airflow_provider_gcp_wif.errors import WifConfigError
from tests.core.settings_cases import AUDIENCE, MALFORMED

SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
BASE = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider"}


def settings(**extras):
    return WifSettings.from_extras({**BASE, **extras}, allowed_endpoint_hosts="")


def test_three_ids_build_the_audience_and_defaults_match_the_design_table():
    s = settings()
    assert s.audience == AUDIENCE
    assert s.aws_conn_id == "aws_default"
    assert s.scopes == (CLOUD_PLATFORM_SCOPE,)
    assert s.lifetime_seconds == 3600
    assert s.universe_domain == "googleapis.com"
    assert s.sts_endpoint == "https://sts.googleapis.com/v1/token"
    assert s.iam_endpoint == "https://iamcredentials.googleapis.com"
    assert s.num_retries == 5
    assert s.impersonation_chain == ()
    assert s.service_account is None


def test_audience_with_https_prefix_is_normalised_and_split_into_ids():
    s = WifSettings.from_extras({"audience": "https:" + AUDIENCE + "/"}, allowed_endpoint_hosts="")
    assert s.audience == AUDIENCE
    assert (s.project_number, s.pool_id, s.provider_id) == ("734501234567", "aws-pool", "aws-provider")


def test_audience_and_matching_ids_together_are_accepted():
    assert settings(audience=AUDIENCE).audience == AUDIENCE


def test_legacy_prefixed_extras_are_read_and_the_plain_key_wins():
    s = WifSettings.from_extras(
        {
            "extra__gcp_wif__project_number": "734501234567",
            "extra__gcp_wif__pool_id": "aws-pool",
            "extra__gcp_wif__provider_id": "other-provider",
            "provider_id": "aws-provider",
            "extra__gcp_wif__impersonation_chain": SA,
        },
        allowed_endpoint_hosts="",
    )
    assert s.audience == AUDIENCE
    assert s.service_account == SA


def test_empty_strings_from_the_ui_count_as_unset():
    s = settings(scope="", lifetime_seconds="", aws_region="  ", impersonation_chain="", project="")
    assert s.scopes == (CLOUD_PLATFORM_SCOPE,) and s.lifetime_seconds == 3600 and s.aws_region is None


def test_impersonation_chain_splits_on_commas_and_the_last_account_is_used():
    first, last = "hop@p-123456.iam.gserviceaccount.com", SA
    s = settings(impersonation_chain=f" {first} , {last} ")
    assert s.impersonation_chain == (first, last)
    assert s.service_account == last and s.delegates == (first,)
    assert settings(impersonation_chain=[first, last]).impersonation_chain == (first, last)


@pytest.mark.parametrize("raw, expected", [(3600, 3600), ("3600s", 3600), ("43200", 43200), ("1", 1), (900.0, 900)])
def test_lifetime_accepts_seconds_and_google_duration_strings(raw, expected):
    assert settings(lifetime_seconds=raw, impersonation_chain=SA).lifetime_seconds == expected


def test_scopes_are_comma_or_space_separated_and_deduplicated():
    s = settings(scope="https://www.googleapis.com/auth/devstorage.read_only, openid https://www.googleapis.com/auth/devstorage.read_only")
    assert s.scopes == ("https://www.googleapis.com/auth/devstorage.read_only", "openid")


def test_credential_config_file_supplies_audience_impersonation_and_lifetime():
    config = {
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "token_url": "https://sts.googleapis.com/v1/token",
        "service_account_impersonation_url": f"https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{SA}:generateAccessToken",
        "service_account_impersonation": {"token_lifetime_seconds": 1800},
        "credential_source": {
            "environment_id": "aws1",
            "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
            "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
    }
    s = WifSettings.from_extras({"credential_config": json.dumps(config)}, allowed_endpoint_hosts="")
    assert s.audience == AUDIENCE and s.service_account == SA and s.lifetime_seconds == 1800
    assert s.iam_endpoint == "https://iamcredentials.googleapis.com"
    # explicit extras win over the file
    assert WifSettings.from_extras({"credential_config": config, "lifetime_seconds": 600}).lifetime_seconds == 600


def test_private_service_connect_and_allowed_hosts_are_accepted():
    s = settings(sts_endpoint="https://sts-mypsc.p.googleapis.com", iam_endpoint="https://iamcredentials-mypsc.p.googleapis.com/")
    assert s.sts_endpoint == "https://sts-mypsc.p.googleapis.com/v1/token"
    assert s.iam_endpoint == "https://iamcredentials-mypsc.p.googleapis.com"
    allowed = WifSettings.from_extras(
        {**BASE, "sts_endpoint": "https://sts.corp.example/v1/token"}, allowed_endpoint_hosts="sts.corp.example"
    )
    assert allowed.sts_endpoint == "https://sts.corp.example/v1/token"
    suffix = WifSettings.from_extras(
        {**BASE, "iam_endpoint": "https://iam.eu.corp.example"}, allowed_endpoint_hosts=".corp.example"
    )
    assert suffix.iam_endpoint == "https://iam.eu.corp.example"


def test_loopback_emulator_endpoints_are_allowed_over_http_when_the_deployment_lists_them():
    s = WifSettings.from_extras({**BASE, "sts_endpoint": "http://127.0.0.1:8765/v1/token",
                                 "iam_endpoint": "http://localhost:8765"}, allowed_endpoint_hosts="127.0.0.1,localhost")
    assert s.sts_endpoint == "http://127.0.0.1:8765/v1/token" and s.iam_endpoint == "http://localhost:8765"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8765/v1/token", "https://127.0.0.1:8765/v1/token",
                                      "http://localhost:8765/v1/token", "http://[::1]:8765/v1/token",
                                      "http://127.0.0.2/v1/token"])
def test_a_loopback_endpoint_the_deployment_does_not_list_is_refused(endpoint):
    """Any local user can listen on a loopback port: a connection editor must not be able to send the signed
    request (replayable for ~15 minutes) or the federated token there."""
    with pytest.raises(WifConfigError) as caught:
        settings(sts_endpoint=endpoint)
    assert caught.value.field == "sts_endpoint" and "allowed_endpoint_hosts" in caught.value.fix


@pytest.mark.parametrize(("listed", "admitted", "refused"), [
    ("127.0.0.1", ["http://127.0.0.1:1", "https://127.0.0.1"], ["http://127.0.0.2:1", "http://localhost:1",
                                                              "http://[::1]:1", "http://127.1:1"]),
    ("localhost", ["http://localhost:1", "http://LOCALHOST:1", "http://localhost.:1"],
     ["http://127.0.0.1:1", "http://[::1]:1"]),
    ("LOCALHOST.", ["http://localhost:1", "http://Localhost.:1"], ["http://127.0.0.1:1"]),
    ("[::1]", ["http://[::1]:1", "http://[0:0:0:0:0:0:0:1]:1"], ["http://127.0.0.1:1", "http://localhost:1"]),
    ("127.1", [], ["http://127.0.0.1:1", "http://127.1:1"]),  # not an address the grammar reads: ignored
    ("2130706433,0x7f.1", [], ["http://127.0.0.1:1"]),
])
def test_a_loopback_entry_admits_exactly_the_host_it_names(listed, admitted, refused):
    """``localhost`` is not ``127.0.0.1``: the allow-list compares what the URL says (lower case, no trailing dot),
    never what a resolver would make of it."""
    for url in admitted:
        assert WifSettings.from_extras({**BASE, "iam_endpoint": url}, allowed_endpoint_hosts=listed).iam_endpoint
    for url in refused:
        with pytest.raises(WifConfigError) as caught:
            WifSettings.from_extras({**BASE, "iam_endpoint": url}, allowed_endpoint_hosts=listed)
        assert caught.value.field == "iam_endpoint", (listed, url)


def test_plain_http_stays_refused_for_a_listed_host_that_is_not_loopback():
    with pytest.raises(WifConfigError) as caught:
        WifSettings.from_extras({**BASE, "sts_endpoint": "http://sts.corp.example/v1/token"},
                                allowed_endpoint_hosts="sts.corp.example")
    assert caught.value.field == "sts_endpoint" and "https" in caught.value.fix


def test_allow_list_comes_from_the_airflow_environment_variable(monkeypatch):
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", "sts.corp.example, other.example")
    s = WifSettings.from_extras({**BASE, "sts_endpoint": "https://sts.corp.example/v1/token"})
    assert s.sts_endpoint.startswith("https://sts.corp.example")


def test_unknown_key_is_warned_with_a_did_you_mean(caplog):
    with caplog.at_level(logging.WARNING, logger="airflow_provider_gcp_wif.config"):
        settings(impersonation_chian=SA)
    assert "impersonation_chian" in caplog.text and "Did you mean 'impersonation_chain'" in caplog.text


def test_seed_environment_variables(monkeypatch):
    env = {
        "GCP_PROJECT_NUMBER": "734501234567",
        "GCP_WORKLOAD_ID": "aws-pool",
        "GCP_WORKLOAD_PROVIDER": "aws-provider",
        "GCP_SERVICE_ACCOUNT_EMAIL": SA,
        "AWS_REGION": "eu-west-2",
        "TOKEN_LIFETIME": "1200s",
        "TOKEN_SCOPES": "https://www.googleapis.com/auth/devstorage.read_write",
    }
    s = WifSettings.from_env(env)
    assert s.audience == AUDIENCE and s.service_account == SA and s.aws_region == "eu-west-2"
    assert s.lifetime_seconds == 1200 and s.scopes == ("https://www.googleapis.com/auth/devstorage.read_write",)


def test_seed_environment_errors_name_the_variable():
    with pytest.raises(WifConfigError) as caught:
        WifSettings.from_env({"GCP_PROJECT_NUMBER": "my-project", "GCP_WORKLOAD_ID": "aws-pool", "GCP_WORKLOAD_PROVIDER": "aws-provider"})
    assert caught.value.field == "GCP_PROJECT_NUMBER"
    assert "GCP_PROJECT_NUMBER" in str(caught.value) and "projectNumber" in str(caught.value)


def test_settings_are_immutable_and_replace_revalidates():
    s = settings(impersonation_chain=SA)
    with pytest.raises(AttributeError):
        s.pool_id = "other"  # type: ignore[misc]
    other = s.replace(impersonation_chain="x@y.iam.gserviceaccount.com", quota_project_id="billing-project")
    assert other.service_account == "x@y.iam.gserviceaccount.com" and other.quota_project_id == "billing-project"
    assert s.service_account == SA
    with pytest.raises(WifConfigError) as caught:
        s.replace(impersonation_chain="not an email")
    assert caught.value.field == "impersonation_chain"
    with pytest.raises(WifConfigError) as caught:
        s.replace(sts_endpoint="https://evil.example/v1/token")
    assert caught.value.field == "sts_endpoint"


# ---------------------------------------------------------------------------------------------------------------
# Malformed settings (the cases are in settings_cases.py): each names its field and the fix.
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("extras, field", [(e, f) for _, e, f in MALFORMED], ids=[name for name, _, _ in MALFORMED])
def test_malformed_setting_is_refused_naming_the_field_and_a_fix(extras, field):
    raw = {**BASE, **extras}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(WifConfigError) as caught:
        WifSettings.from_extras(raw, conn_id="my_wif", allowed_endpoint_hosts="")
    error = caught.value
    assert error.field == field
    assert str(error).startswith(f"gcp_wif connection 'my_wif': {field}: ")
    assert error.fix, "every config error says how to fix it"
    assert "Fix: " in str(error)
    assert isinstance(error, ValueError)


def test_at_least_thirty_malformed_cases_are_covered():
    assert len(MALFORMED) >= 30
