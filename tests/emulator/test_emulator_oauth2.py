"""The emulated OAuth 2.0 token endpoint: a stock service-account key (google-auth's own JWT-bearer grant) gets a
token that emulated Storage accepts; a forged or foreign signature, another account or a disabled one is refused
with Google's OAuth error shape."""

from __future__ import annotations

import copy
import json
import time

import google.auth.transport.requests
import pytest
import requests
from google.auth import crypt, exceptions, jwt
from google.oauth2 import service_account


def _credentials(key: dict) -> service_account.Credentials:
    return service_account.Credentials.from_service_account_info(
        key, scopes=["https://www.googleapis.com/auth/cloud-platform"])


def test_a_stock_key_file_gets_a_token_storage_accepts(emulator):
    info = emulator.info
    key = emulator.control.create_service_account_key(info["service_account"])
    assert key["token_uri"] == f"{info['storage_host']}/token"
    credentials = _credentials(key)
    credentials.refresh(google.auth.transport.requests.Request())
    [grant] = emulator.control.requests("oauth2")
    assert (grant["status"], grant["principal"]) == (200, info["service_account"])
    listing = requests.get(f"{info['storage_host']}/storage/v1/b/{info['bucket']}/o",
                           headers={"Authorization": f"Bearer {credentials.token}"}, timeout=10)
    assert listing.status_code == 200
    [call] = emulator.control.requests("storage")
    assert call["principal"] == info["service_account"]


def _assertion(key: dict, private_key: str | None = None, **claims) -> str:
    signer = crypt.RSASigner.from_string(private_key or key["private_key"], key["private_key_id"])
    now = int(time.time())
    payload = {"iss": key["client_email"], "aud": key["token_uri"], "iat": now, "exp": now + 600,
               "scope": "https://www.googleapis.com/auth/cloud-platform", **claims}
    return jwt.encode(signer, payload).decode()


def _grant(key: dict, assertion: str) -> requests.Response:
    return requests.post(key["token_uri"], timeout=10, data={
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion})


def test_a_signature_by_another_key_is_invalid_grant(emulator):
    info = emulator.info
    key = emulator.control.create_service_account_key(info["service_account"])
    other = emulator.control.create_service_account_key(info["service_account"])
    response = _grant(key, _assertion(key, private_key=other["private_key"]))  # kid of key, signed by other
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    assert _grant(key, _assertion(key)).status_code == 200


def test_a_tampered_assertion_is_invalid_grant(emulator):
    info = emulator.info
    key = emulator.control.create_service_account_key(info["service_account"])
    header, payload, signature = _assertion(key).split(".")
    forged = jwt._helpers.unpadded_urlsafe_b64encode(json.dumps(
        {**json.loads(jwt._helpers.padded_urlsafe_b64decode(payload)), "iss": info["target_service_account"]})
        .encode()).decode()
    response = _grant(key, f"{header}.{forged}.{signature}")
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


def test_an_issuer_other_than_the_keys_account_is_refused(emulator):
    info = emulator.info
    key = emulator.control.create_service_account_key(info["service_account"])
    response = _grant(key, _assertion(key, iss=info["target_service_account"]))
    assert (response.status_code, response.json()["error"]) == (400, "invalid_grant")


def test_a_disabled_account_is_refused(emulator):
    info = emulator.info
    key = emulator.control.create_service_account_key(info["service_account"])
    config = copy.deepcopy(emulator.control.get_config())
    config["service_accounts"][info["service_account"]]["disabled"] = True
    emulator.control.replace_config(config)
    with pytest.raises(exceptions.RefreshError, match="invalid_grant"):
        _credentials(key).refresh(google.auth.transport.requests.Request())


def test_another_grant_type_is_unsupported(emulator):
    key = emulator.control.create_service_account_key(emulator.info["service_account"])
    response = requests.post(key["token_uri"], data={"grant_type": "client_credentials"}, timeout=10)
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")
