"""A failed exchange's error, and every exception chained under it, carry no token: not in ``str``, ``repr``, the
arguments, or the formatted traceback (what a task log prints), even when Google's answer held a live token.

Provoked with the emulator's ``bad_expiry`` fault: a real answer, whose token is live, with an expiry no client can
parse. google-auth raises with that body among its exception's arguments. Every token found in an answer reaches
the secrets masker too. The tokens are judged by the emulator's own request log (see ``token_oracle``).
"""

from __future__ import annotations

import json
import pickle
import re
import string
import traceback

import google.auth.impersonated_credentials
import google.auth.transport.requests
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import masking
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifExchangeError, sanitized_cause

from .leak_scan import leaks
from .token_oracle import known_tokens, tokens_in


def chain(error: BaseException) -> list[BaseException]:
    links: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in links:
        links.append(current)
        current = current.__cause__ or current.__context__
    return links


def everything_said_about(error: BaseException) -> str:
    parts = ["".join(traceback.format_exception(error))]
    for link in chain(error):
        parts += [str(link), repr(link), repr(link.args), repr(vars(link))]
    return "\n".join(parts)


@pytest.fixture
def masked(monkeypatch):
    """What the core announced to the secrets masker during the test."""
    values: list[str] = []
    monkeypatch.setattr(masking, "_listeners", [values.append])
    monkeypatch.setattr(masking, "_announced", set())
    return values


@pytest.mark.parametrize("endpoint", ["iam.generateAccessToken", "sts"])
def test_a_live_token_in_a_malformed_answer_stays_out_of_the_error_and_its_chain(
    emulator, settings_for, role_supplier, masked, endpoint
):
    emulator.control.inject_faults(endpoint, kinds=["bad_expiry"], count=1)
    credentials = get_credentials(settings_for(), role_supplier())
    with pytest.raises(WifExchangeError) as caught:
        credentials.refresh(google.auth.transport.requests.Request())
    error = caught.value
    assert error.step == ("sts_exchange" if endpoint == "sts" else "impersonation")
    faulty = [r for r in emulator.control.requests(endpoint) if r["fault"] == "bad_expiry"]
    assert faulty and faulty[0]["status"] == 200, "the emulator answered with a live token"
    known = known_tokens(emulator)
    issued = faulty[0].get("issued_token_fingerprint") or faulty[0]["token_fingerprint"]
    assert issued in known

    text = everything_said_about(error)
    assert len(chain(error)) >= 2, "the cause is still chained, as a sanitised copy"
    assert not tokens_in(text, known), tokens_in(text, known)
    assert not leaks(text, {}), leaks(text, {})
    from airflow_provider_gcp_wif.testing.state import fingerprint

    announced = {fingerprint(value) for value in masked}
    assert issued in announced, "the token of the malformed answer reached the secrets masker"
    sts = emulator.control.requests("sts")[0]
    # What makes the subject token a secret, its SigV4 signature, not the whole token: that this is enough (no
    # rendering, masked, holds a secret or can be spent) is test_subject_token_masking.py's.
    assert any(re.fullmatch(r"[0-9a-f]{64}", value) for value in masked), "so did the subject token's signature"
    if endpoint != "sts":
        assert sts["token_fingerprint"] in announced, "and the federated token"


def test_the_oracle_finds_a_token_that_is_there(emulator, settings_for, role_supplier):
    """``tokens_in`` can fail: the real traceback of google-auth's exception names the token."""
    emulator.control.inject_faults("iam.generateAccessToken", kinds=["bad_expiry"], count=1)
    credentials = get_credentials(settings_for(), role_supplier())
    inner = credentials.chain.final
    with pytest.raises(Exception) as caught:
        google.auth.impersonated_credentials.Credentials.refresh(inner, google.auth.transport.requests.Request())
    text = "".join(traceback.format_exception(caught.value))
    assert tokens_in(text, known_tokens(emulator)), "google-auth's own traceback holds the live token"


# -- the sanitiser, over generated tokens and the shapes google-auth puts them in ------------------------------

TOKEN_CHARS = st.sampled_from(string.ascii_letters + string.digits + "-_.~+/=%")
BODY_SHAPES = {
    "IAM answer": lambda t: json.dumps({"accessToken": t, "expireTime": "soon"}),
    "STS answer": lambda t: json.dumps({"access_token": t, "token_type": "Bearer", "expires_in": "x"}),
    "truncated JSON": lambda t: '{"access_token": "' + t,
    "ID token answer": lambda t: json.dumps({"token": t}),
    "id_token field": lambda t: json.dumps({"id_token": t, "expires_in": 1}),
    "python repr of a dict": lambda t: repr({"accessToken": t, "expireTime": None}),
    "form body": lambda t: "grant_type=x&subject_token=" + t + "&audience=y",
    "bearer header": lambda t: "headers={'Authorization': 'Bearer " + t + "'}",
}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(token=st.text(TOKEN_CHARS, min_size=16, max_size=300), shape=st.sampled_from(sorted(BODY_SHAPES)),
       as_bytes=st.booleans(), below=st.booleans())
def test_no_generated_token_survives_the_sanitised_chain(token, shape, as_bytes, below):
    assume(token not in "google.auth.exceptions.RefreshError: Unable to acquire impersonated credentials")
    body = BODY_SHAPES[shape](token)
    from google.auth import exceptions as google_exceptions

    try:
        try:
            json.loads(body.split("=", 1)[-1] if shape == "form body" else body)
            raise ValueError(f"time data {body!r} does not match format")
        except ValueError as inner:
            args = ("Unable to acquire impersonated credentials", body.encode() if as_bytes else body)
            raise google_exceptions.RefreshError(*args) from (inner if below else None)
    except google_exceptions.RefreshError as exc:
        original = exc
    assert token in "".join(traceback.format_exception(original)) + repr(original.args), "the shape holds it"
    cause = sanitized_cause(original)
    text = everything_said_about(cause)
    assert token not in text
    assert "RefreshError" in text and "Unable to acquire impersonated credentials" in text, "the cause stays useful"
    assert str(pickle.loads(pickle.dumps(cause))) == str(cause), "it crosses process boundaries"


@settings(max_examples=200, deadline=None, derandomize=True)
@given(secret=st.text(min_size=8, max_size=100), before=st.text(max_size=50), after=st.text(max_size=50))
def test_a_secret_the_caller_names_is_removed_wherever_it_stands(secret, before, after):
    assume(secret not in "builtins.RuntimeError: ***")
    cause = sanitized_cause(RuntimeError(before + secret + after), [secret])
    assert secret not in str(cause) and secret not in repr(cause)
