"""Emulated generateIdToken: RS256 JWTs that verify against the emulator's published certificates, the way a
Cloud Run service (or ``google.oauth2.id_token.verify_token``) checks them."""

from __future__ import annotations

import base64
import json
import time

import google.auth.transport.requests
import pytest
import requests
from google.auth import exceptions as google_exceptions
from google.oauth2 import id_token
from wif_chain import federated_token, iam_url

AUDIENCE = "https://hello-abc123-ew.a.run.app"


def _mint(info, audience=AUDIENCE, include_email=True, bearer=None):
    response = requests.post(iam_url(info, info["service_account"], "generateIdToken"),
                             json={"audience": audience, "includeEmail": include_email},
                             headers={"Authorization": f"Bearer {bearer or federated_token(info)}"}, timeout=30)
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"token"}
    return response.json()["token"]


def _segment(token, index):
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_id_token_verifies_against_the_emulator_certificates(emulator):
    info = emulator.info
    token = _mint(info)

    claims = id_token.verify_token(token, google.auth.transport.requests.Request(), audience=AUDIENCE,
                                   certs_url=info["id_token_certs_url"])

    assert claims["aud"] == AUDIENCE
    assert claims["email"] == info["service_account"]
    assert claims["email_verified"] is True
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["sub"].isdigit() and claims["azp"] == claims["sub"]
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["exp"] - claims["iat"] == 3600
    assert _segment(token, 0)["alg"] == "RS256"


def test_a_tampered_id_token_fails_verification(emulator):
    info = emulator.info
    header, payload, signature = _mint(info).split(".")
    claims = _segment(f"{header}.{payload}", 1)
    claims["email"] = "someone-else@wif-demo-project.iam.gserviceaccount.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    with pytest.raises(ValueError, match="signature"):
        id_token.verify_token(f"{header}.{forged}.{signature}", google.auth.transport.requests.Request(),
                              audience=AUDIENCE, certs_url=info["id_token_certs_url"])


def test_an_id_token_for_another_audience_is_refused(emulator):
    info = emulator.info
    token = _mint(info, audience="https://other.example")

    with pytest.raises(ValueError, match="audience"):
        id_token.verify_token(token, google.auth.transport.requests.Request(), audience=AUDIENCE,
                              certs_url=info["id_token_certs_url"])


def test_without_include_email_the_token_has_no_email(emulator):
    claims = _segment(_mint(emulator.info, include_email=False), 1)

    assert "email" not in claims and claims["aud"] == AUDIENCE


def test_jwks_publishes_the_same_key_as_the_certificates(emulator):
    from cryptography import x509

    info = emulator.info
    token = _mint(info)
    kid = _segment(token, 0)["kid"]
    pem = requests.get(info["id_token_certs_url"], timeout=30).json()[kid]
    jwks = requests.get(info["id_token_certs_url"].replace("/v1/", "/v3/"), timeout=30).json()
    numbers = x509.load_pem_x509_certificate(pem.encode()).public_key().public_numbers()
    (key,) = [k for k in jwks["keys"] if k["kid"] == kid]

    def integer(text):
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    assert (integer(key["n"]), integer(key["e"])) == (numbers.n, numbers.e)
    assert key["alg"] == "RS256"


def test_an_expired_id_token_fails_verification(emulator):
    info = emulator.info
    bearer = federated_token(info)
    emulator.control.set_clock_offset(-7200)  # minted two hours ago, valid for one
    token = _mint(info, bearer=bearer)

    with pytest.raises((ValueError, google_exceptions.GoogleAuthError), match=r"expired|Token used too late"):
        id_token.verify_token(token, google.auth.transport.requests.Request(), audience=AUDIENCE,
                              certs_url=info["id_token_certs_url"])
