"""``GcpWifHook.get_id_token`` in process, through an Airflow connection: the hook's chain decides the account,
the token reaches Airflow's secrets masker, and a connection that is not ``gcp_wif`` gets a clear error."""

from __future__ import annotations

import json

import google.auth.transport.requests
import pytest
from google.oauth2 import id_token as google_id_token

from airflow_provider_gcp_wif import id_tokens
from airflow_provider_gcp_wif.errors import WifConfigError
from tests.airflow_process import airflow_redact

AUDIENCE = "https://hello-abc123-ew.a.run.app"


@pytest.fixture(autouse=True)
def fresh_id_tokens():
    id_tokens.clear_cache()
    yield
    id_tokens.clear_cache()


def claims_of(info, token):
    return google_id_token.verify_token(token, google.auth.transport.requests.Request(), audience=AUDIENCE,
                                        certs_url=info["id_token_certs_url"])


def hook(**kwargs):
    from airflow_provider_gcp_wif.hooks.gcp_wif import GcpWifHook

    return GcpWifHook(**kwargs)


def test_the_hook_mints_an_id_token_for_the_connections_service_account(wif_env, emulator):
    token = hook().get_id_token(AUDIENCE)

    assert claims_of(wif_env, token)["email"] == wif_env["service_account"]
    assert hook().get_id_token(AUDIENCE) == token
    assert len(emulator.control.requests("iam.generateIdToken")) == 1


def test_the_hooks_impersonation_chain_replaces_the_connections(wif_env):
    chain = [wif_env["service_account"], wif_env["target_service_account"]]

    token = hook(impersonation_chain=chain).get_id_token(AUDIENCE)

    assert claims_of(wif_env, token)["email"] == wif_env["target_service_account"]


def test_the_id_token_is_masked_in_airflow_logs(wif_env):
    redact = airflow_redact()

    token = hook().get_id_token(AUDIENCE)

    assert redact(f"Authorization: Bearer {token}") == "Authorization: Bearer ***"


def test_a_connection_of_another_type_is_refused(wif_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_PLAIN_GOOGLE", json.dumps({"conn_type": "google_cloud_platform",
                                                                "extra": {"project": "p-123456"}}))

    with pytest.raises(WifConfigError, match="not of type 'gcp_wif'"):
        hook(gcp_conn_id="plain_google").get_id_token(AUDIENCE)


def test_direct_access_connection_says_a_service_account_is_needed(wif_env, monkeypatch):
    extra = json.loads(wif_env["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])["extra"]
    extra.pop("impersonation_chain")
    monkeypatch.setenv("AIRFLOW_CONN_GCP_WIF_DIRECT", json.dumps({"conn_type": "gcp_wif", "extra": extra}))

    with pytest.raises(WifConfigError) as caught:
        hook(gcp_conn_id="gcp_wif_direct").get_id_token(AUDIENCE)

    assert caught.value.field == "impersonation_chain" and caught.value.conn_id == "gcp_wif_direct"
