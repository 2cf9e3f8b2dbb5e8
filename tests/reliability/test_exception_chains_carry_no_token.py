"""A failed exchange's error, and every exception chained under it, carry no token: not in ``str``, ``repr``, the
arguments, or the formatted traceback (what a task log prints), even when Google's answer held a live token.

Provoked with the emulator's ``bad_expiry`` fault: a real answer, whose token is live, with an expiry no client can
parse. google-auth raises with that body among its exception's arguments. Every token found in an answer reaches
the secrets masker too. The tokens are judged by the emulator's own request log (see ``token_oracle``).
"""

from __future__ import annotations

import traceback

import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import masking
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifExchangeError

from .test_secrets_stay_secret import leaks
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
    assert sts["subject_token_fingerprint"] in announced, "so did the subject token"
    if endpoint != "sts":
        assert sts["token_fingerprint"] in announced, "and the federated token"


def test_the_oracle_finds_a_token_that_is_there(emulator, settings_for, role_supplier):
    """``tokens_in`` can fail: the real traceback of google-auth's exception names the token."""
    emulator.control.inject_faults("iam.generateAccessToken", kinds=["bad_expiry"], count=1)
    credentials = get_credentials(settings_for(), role_supplier())
    inner = credentials._inner
    with pytest.raises(Exception) as caught:
        google.auth.impersonated_credentials.Credentials.refresh(inner, google.auth.transport.requests.Request())
    text = "".join(traceback.format_exception(caught.value))
    assert tokens_in(text, known_tokens(emulator)), "google-auth's own traceback holds the live token"
