"""The sigv4 route tells the secrets masker what makes its subject token a secret — the SigV4 signature, and the
session token in the forms the subject token holds — instead of the whole ~1.3 kB token (README "Performance":
Airflow's masker recompiles one expression of all its patterns per secret). Judged by two oracles that are not the
provider's code:

* Airflow's REAL ``SecretsMasker``, told only what the provider announced, leaves in no rendering of a subject token
  the exchange can produce (the token itself, JSON holding it, the decoded signed request, google-auth's request
  log record, its ``repr``, the form-encoded STS body) the signature, the secret key, or the session token as it
  stands raw or inside the subject token;
* the emulated Google STS, which replays the request to signature-checking moto, accepts the subject token and
  refuses the masked one: what a log shows cannot be spent.

The form body's session token is quoted twice (``%252B``): that one form is not announced (one more pattern would
cost every later secret's recompilation; no log of the provider or of google-auth writes the raw body, and the
whole-token announcement of before did not match the form body at all, signature included).
"""

from __future__ import annotations

import json
import re
import string
import urllib.parse

import boto3
import pytest
from google.auth.transport.requests import Request
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import masking
from airflow_provider_gcp_wif.chain import build_chain
from airflow_provider_gcp_wif.constants import AWS_SUBJECT_TOKEN_TYPE
from airflow_provider_gcp_wif.supplier import Boto3Supplier

from .test_subject_token_binding import exchange_by_hand

SIGNATURE = re.compile(r"Signature=([0-9a-f]{64})")


def airflows_masker():
    """A fresh instance of the secrets masker class of the installed Airflow (3.1+ shared, 3.0 SDK, 2.x core)."""
    import importlib

    for name in ("airflow.sdk._shared.secrets_masker.secrets_masker", "airflow.sdk.execution_time.secrets_masker",
                 "airflow.utils.log.secrets_masker"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "SecretsMasker"):
            return module.SecretsMasker()
    raise RuntimeError("no Airflow secrets masker found")


@pytest.fixture
def masker(monkeypatch):
    """Airflow's masker, hearing (only) what the core announces from now on."""
    real = airflows_masker()
    monkeypatch.setattr(masking, "_listeners", [real.add_mask])
    monkeypatch.setattr(masking, "_announced", set())
    return real


def renderings(subject_token: str, token_url: str) -> dict[str, str]:
    """The texts in which a subject token can be seen."""
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "audience": "//iam/x",
            "subject_token_type": AWS_SUBJECT_TOKEN_TYPE, "subject_token": subject_token}
    form_body = urllib.parse.urlencode(form)
    return {
        "subject token": subject_token,
        "repr": repr(subject_token),
        "JSON": json.dumps({"subject_token": subject_token}),
        "decoded signed request": urllib.parse.unquote(subject_token),
        # google-auth's request log record: the form body parsed back (``_helpers._parse_request_body``)
        "google-auth request log": repr({"method": "POST", "url": token_url, "headers": {},
                                         "body": dict(urllib.parse.parse_qsl(form_body))}),
        "form body": form_body,
    }


def secret_forms(session_token: str, secret_key: str, signature: str) -> dict[str, str]:
    in_subject_token = urllib.parse.quote(json.dumps(session_token)[1:-1])
    return {"signature": signature, "secret key": secret_key, "session token": session_token,
            "session token as the subject token quotes it": in_subject_token}


def subject_token_of(settings_for, supplier: Boto3Supplier) -> tuple[str, str]:
    federated = build_chain(settings_for(), supplier).federated
    return federated.retrieve_subject_token(Request()), federated._token_url


BASE64 = string.ascii_letters + string.digits + "+/="


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(session_token=st.text(st.sampled_from(BASE64), min_size=16, max_size=600),
       secret_key=st.text(st.sampled_from(BASE64), min_size=40, max_size=40),
       key_id=st.text(st.sampled_from(string.ascii_uppercase + string.digits), min_size=16, max_size=16),
       region=st.sampled_from(["us-east-1", "eu-west-3", "cn-north-1", "us-gov-west-1"]))
def test_no_rendering_of_a_masked_subject_token_holds_its_secrets(settings_for, monkeypatch, session_token,
                                                                   secret_key, key_id, region):
    real = airflows_masker()
    monkeypatch.setattr(masking, "_listeners", [real.add_mask])
    monkeypatch.setattr(masking, "_announced", set())
    supplier = Boto3Supplier(lambda: boto3.session.Session(
        aws_access_key_id="ASIA" + key_id, aws_secret_access_key=secret_key, aws_session_token=session_token,
        region_name=region), identity_key=f"generated:{key_id}", description="generated keys")
    subject_token, token_url = subject_token_of(settings_for, supplier)
    (signature,) = SIGNATURE.findall(urllib.parse.unquote(subject_token))
    secrets = secret_forms(session_token, secret_key, signature)
    for rendering, text in renderings(subject_token, token_url).items():
        masked = real.redact(text)
        assert "***" in masked, rendering
        for name, value in secrets.items():
            assert value not in masked, f"the {name} is in the masked {rendering}"


def test_a_masked_subject_token_cannot_be_spent(emulator, aws_env, settings_for, role_supplier, masker):
    """End to end: moto's session credentials, the emulated STS (replaying to moto) as the judge."""
    supplier = role_supplier()
    subject_token, token_url = subject_token_of(settings_for, supplier)
    aws = supplier.get_aws_security_credentials(None, None)
    (signature,) = SIGNATURE.findall(urllib.parse.unquote(subject_token))
    secrets = secret_forms(aws.session_token, aws.secret_access_key, signature)
    for rendering, text in renderings(subject_token, token_url).items():
        masked = masker.redact(text)
        for name, value in secrets.items():
            assert value not in masked, f"the {name} is in the masked {rendering}"
    refused = exchange_by_hand(aws_env, aws_env["audience"], masker.redact(subject_token))
    assert refused.status_code >= 400, refused.text
    assert exchange_by_hand(aws_env, aws_env["audience"], subject_token).status_code == 200, "unmasked, it is spent"


@settings(max_examples=100, derandomize=True)
@given(text=st.text(min_size=1, max_size=200), session_token=st.none() | st.text(st.sampled_from(BASE64), min_size=16))
def test_without_a_recognisable_signature_the_whole_value_is_announced(text, session_token):
    """The fallback (no ``Authorization`` header: the caller passes the subject token itself) hides it all."""
    assume(not SIGNATURE.search(text))
    announced = masking.signed_request_secrets(text, session_token)
    assert announced[0] == text
    assert (session_token in announced) if session_token else len(announced) == 1
