"""``federation: jwt``: the AWS identity asks AWS STS GetWebIdentityToken for a JWT, which Google's OIDC provider
exchanges. These tests pin what needs no emulated OIDC provider: the setting, the duration arithmetic, the regional
endpoint and the botocore version check; tests/core/test_jwt_exchange.py runs the route against the emulated
clouds."""

from __future__ import annotations

import datetime

import botocore
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif.chain import jwt_audience
from airflow_provider_gcp_wif.config import KNOWN_KEYS, SEED_ENV, WifSettings
from airflow_provider_gcp_wif.credentials import cache_key
from airflow_provider_gcp_wif.errors import WifConfigError
from airflow_provider_gcp_wif.host_cache import HostTokenCache
from airflow_provider_gcp_wif.provider_info import CONN_FIELDS
from airflow_provider_gcp_wif.supplier import (
    GET_WEB_IDENTITY_TOKEN_BOTOCORE,
    MIN_JWT_DURATION_SECONDS,
    SESSION_EXPIRY_MARGIN_SECONDS,
    Boto3Supplier,
    WebIdentityTokenSupplier,
    web_identity_token_duration,
)
from airflow_provider_gcp_wif.token_service import TokenService
from tests.fixtures import listening_decoy, sts_model_without_get_web_identity_token

BASE = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider"}


# -- the setting -------------------------------------------------------------------------------------------------


def test_federation_defaults_to_sigv4_and_accepts_jwt_in_any_case():
    assert WifSettings.from_extras(BASE, allowed_endpoint_hosts="").federation == "sigv4"
    for raw in ("jwt", " JWT ", "Jwt", "extra__gcp_wif__"):
        extras = {**BASE, "extra__gcp_wif__federation": "jwt"} if raw == "extra__gcp_wif__" else {**BASE,
                                                                                                    "federation": raw}
        assert WifSettings.from_extras(extras, allowed_endpoint_hosts="").federation == "jwt"


@pytest.mark.parametrize("value", ["oidc", "sigv5", "jwt,sigv4", 1, True, ["jwt"], {"route": "jwt"}, "x" * 5000])
def test_a_bad_federation_is_a_config_error_naming_the_field_and_both_routes(value):
    with pytest.raises(WifConfigError) as caught:
        WifSettings.from_extras({**BASE, "federation": value}, conn_id="c", allowed_endpoint_hosts="")
    err = caught.value
    assert err.field == "federation", err
    assert "sigv4" in err.fix and "jwt" in err.fix and len(str(err)) < 1000


def test_federation_is_declared_everywhere_a_field_is():
    assert "federation" in KNOWN_KEYS
    assert SEED_ENV["GCP_WIF_FEDERATION"] == "federation"
    schema = CONN_FIELDS["federation"]["schema"]
    assert set(schema["enum"]) - {None} == {"sigv4", "jwt"} and schema["default"] == "sigv4"
    assert WifSettings.from_env({"GCP_PROJECT_NUMBER": "734501234567", "GCP_WORKLOAD_ID": "aws-pool",
                                 "GCP_WORKLOAD_PROVIDER": "aws-provider", "GCP_WIF_FEDERATION": "jwt"}).federation == "jwt"
    with pytest.raises(WifConfigError) as caught:
        WifSettings.from_env({"GCP_PROJECT_NUMBER": "734501234567", "GCP_WORKLOAD_ID": "aws-pool",
                              "GCP_WORKLOAD_PROVIDER": "aws-provider", "GCP_WIF_FEDERATION": "saml"})
    assert caught.value.field == "GCP_WIF_FEDERATION"
    service = TokenService("734501234567", "aws-pool", "aws-provider", None, federation="jwt")
    assert service.settings.federation == "jwt"
    assert WifSettings.from_extras({**BASE, "federation": "jwt"}, allowed_endpoint_hosts="").replace(
        project="p-12345").federation == "jwt"


def test_a_credential_config_must_match_the_route():
    aws_file = {"type": "external_account", "audience": "//iam.googleapis.com/projects/734501234567/locations/"
                "global/workloadIdentityPools/aws-pool/providers/aws-provider",
                "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request"}
    oidc_file = {**aws_file, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
    assert WifSettings.from_extras({"credential_config": oidc_file, "federation": "jwt"},
                                   allowed_endpoint_hosts="").federation == "jwt"
    for extras in ({"credential_config": aws_file, "federation": "jwt"}, {"credential_config": oidc_file}):
        with pytest.raises(WifConfigError) as caught:
            WifSettings.from_extras(extras, allowed_endpoint_hosts="")
        assert caught.value.field == "credential_config" and "federation" in str(caught.value)


def test_the_routes_never_share_a_cached_token():
    sigv4 = WifSettings.from_extras(BASE, allowed_endpoint_hosts="")
    jwt = sigv4.replace(federation="jwt")
    supplier = Boto3Supplier(lambda: None, identity_key="k")  # type: ignore[arg-type,return-value]
    assert cache_key(sigv4, supplier) != cache_key(jwt, supplier)
    assert HostTokenCache.key_for(cache_key(sigv4, supplier)) != HostTokenCache.key_for(cache_key(jwt, supplier))


def test_the_jwt_audience_is_the_providers_https_name():
    settings_ = WifSettings.from_extras(BASE, allowed_endpoint_hosts="")
    assert jwt_audience(settings_) == ("https://iam.googleapis.com/projects/734501234567/locations/global/"
                                       "workloadIdentityPools/aws-pool/providers/aws-provider")


# -- the duration never outlives the AWS session ------------------------------------------------------------------

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)


@settings(max_examples=2000, derandomize=True, deadline=None)
@given(wanted=st.integers(-100, 10_000), left=st.one_of(st.none(), st.floats(-1000, 50_000, allow_nan=False)))
def test_the_requested_duration_never_outlives_the_session_and_is_never_refused_needlessly(wanted, left):
    """Oracle: AWS refuses DurationSeconds outside 60-3600 and any JWT ending after the session (with our clock
    possibly 30 s behind AWS's); whenever some valid duration exists we ask for one, as close to `wanted` as fits."""
    expiry = None if left is None else NOW + datetime.timedelta(seconds=left)
    duration = web_identity_token_duration(wanted, expiry, NOW)
    target = max(60, min(3600, wanted))
    if expiry is None:
        assert duration == target
        return
    fits = [d for d in range(60, target + 1) if NOW + datetime.timedelta(seconds=d + SESSION_EXPIRY_MARGIN_SECONDS)
            <= expiry]
    if not fits:
        assert duration is None
    else:
        assert duration == max(fits)
        assert MIN_JWT_DURATION_SECONDS <= duration <= 3600


# -- the regional endpoint ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-2", "cn-north-1", "us-gov-west-1"])
def test_the_sts_client_is_regional_even_where_botocore_is_set_to_the_global_endpoint(region, monkeypatch):
    import boto3

    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_STS_REGIONAL_ENDPOINTS", "legacy")  # botocore's own switch to sts.amazonaws.com
    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x" * 40,
                                    region_name=region)
    for factory in (None, lambda s, r: s.client("sts", region_name=r)):  # boto3's client, and a hook's
        supplier = Boto3Supplier(lambda: session, region=region, sts_client_factory=factory)
        host = supplier.regional_sts_client(region).meta.endpoint_url.split("//", 1)[1]
        assert host.startswith(f"sts.{region}.amazonaws.com"), host


def test_an_sts_endpoint_of_the_aws_connection_is_kept(monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566")
    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x" * 40,
                                    region_name="eu-west-2")
    supplier = Boto3Supplier(lambda: session, region="eu-west-2")
    assert supplier.regional_sts_client("eu-west-2").meta.endpoint_url == "http://127.0.0.1:4566"


# -- a botocore that predates GetWebIdentityToken ------------------------------------------------------------------


def test_an_old_botocore_is_a_config_error_naming_the_version_needed_before_any_aws_call(tmp_path, monkeypatch):
    import boto3

    sts_model_without_get_web_identity_token(tmp_path)
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    with listening_decoy() as (port, received):
        monkeypatch.setenv("AWS_ENDPOINT_URL_STS", f"http://127.0.0.1:{port}")
        session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x" * 40,
                                        region_name="eu-west-2")
        supplier = Boto3Supplier(lambda: session, region="eu-west-2")
        assert not hasattr(supplier.regional_sts_client("eu-west-2"), "get_web_identity_token")
        jwt = WebIdentityTokenSupplier(supplier, "https://iam.googleapis.com/projects/1/locations/global/"
                                       "workloadIdentityPools/p/providers/x")
        with pytest.raises(WifConfigError) as caught:
            jwt.get_subject_token(None, None)
    assert received == []
    err = caught.value
    assert err.field == "federation"
    assert f"boto3>={GET_WEB_IDENTITY_TOKEN_BOTOCORE}" in err.fix and f"botocore>={GET_WEB_IDENTITY_TOKEN_BOTOCORE}" in err.fix
    assert botocore.__version__ in err.problem and "sigv4" in err.fix
