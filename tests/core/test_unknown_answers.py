"""Answers Google never documented still get specific help: generated answers (status x step x body shape).

The oracle, for every generated answer: the message names the step and the HTTP status and keeps Google's text;
the fix is not empty and not only "run gcp-wif doctor"; and for 400/401/403/404/429/5xx it is the fix that status
most likely needs at that step. First the translator alone, over google-auth's own exceptions for those bodies;
then the whole chain against the emulator answering with the same generated bodies.
"""

from __future__ import annotations

import json
import re

import google.auth.transport.requests
import pytest
from google.auth import exceptions as google_exceptions
from google.oauth2 import utils as oauth_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import credentials as wif_credentials
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.diagnosis import translate_exception
from airflow_provider_gcp_wif.errors import STEP_TITLES, WifExchangeError

CONTEXT = WifSettings.from_extras(  # the settings the fixes name
    {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider",
     "impersonation_chain": "airflow-wif@wif-demo-project.iam.gserviceaccount.com"}, conn_id="gcp_wif_default",
)
RPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              409: "ABORTED", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
              501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
# OAuth error codes that no catalogue rule keys on.
OAUTH_CODES = ["server_error", "temporarily_unavailable", "access_denied", "invalid_client", "slow_down"]
# json_scalar: a JSON value that is not an object (google-auth's OAuth error handler raises a TypeError for it,
# without the body).
SHAPES = ["json_oauth", "json_api", "empty", "html", "truncated_json", "random_text", "json_scalar"]

# What the likeliest fix must say, per step and status (class).
EXPECTED = {
    ("sts_exchange", 400): ["audience", "providers describe aws-provider"],
    ("sts_exchange", 401): ["proxy", "sts_endpoint"],
    ("sts_exchange", 403): ["gcloud services enable sts.googleapis.com"],
    ("sts_exchange", 404): ["sts_endpoint", "/v1/token"],
    ("sts_exchange", 429): ["quota", "sts.googleapis.com", "Token exchange requests per minute", "retry"],
    ("sts_exchange", 500): ["retry"],
    ("impersonation", 400): ["scope", "impersonation_chain"],
    ("impersonation", 401): ["federated token", "retry"],
    ("impersonation", 403): ["add-iam-policy-binding airflow-wif@", "roles/iam.workloadIdentityUser"],
    ("impersonation", 404): ["not found", "gcloud iam service-accounts describe airflow-wif@",
                             "gcloud iam service-accounts list --project=wif-demo-project"],
    ("impersonation", 429): ["quota", "iamcredentials.googleapis.com", "Generate credentials requests", "retry"],
    ("impersonation", 500): ["retry"],
}

_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='{}[]"<>\\'),
                min_size=1, max_size=400).filter(lambda t: t.strip() and not t.strip().startswith(("{", "[")))


@st.composite
def answers(draw):
    step = draw(st.sampled_from(["sts_exchange", "impersonation"]))
    status = draw(st.one_of(st.sampled_from([*sorted(RPC_STATUS), 405, 407, 408, 413, 502]),
                            st.integers(400, 599)))
    shape = draw(st.sampled_from(SHAPES))
    text = draw(_TEXT)
    if shape == "json_oauth":
        body = json.dumps({"error": draw(st.sampled_from(OAUTH_CODES)), "error_description": text})
        google_text = text.strip()
    elif shape == "json_api":
        body = json.dumps({"error": {"code": status, "message": text, "status": RPC_STATUS.get(status, "UNKNOWN")}})
        google_text = text.strip()
    elif shape == "empty":
        body, google_text = draw(st.sampled_from(["", " ", "\n"])), "empty body"
    elif shape == "html":
        body = f"<!DOCTYPE html><html><head><title>{text}</title></head><body><p>Error {status}</p></body></html>"
        google_text = "HTML page"
    elif shape == "truncated_json":
        full = json.dumps({"error": {"code": status, "message": text, "status": RPC_STATUS.get(status, "X")}})
        body = full[: draw(st.integers(1, len(full) - 1))]
        google_text = "truncated"
    elif shape == "json_scalar":
        body = draw(st.sampled_from([json.dumps(text), "42", "true", "null", "3.5"]))
        google_text = " ".join(body.split())
    else:
        body, google_text = text, " ".join(text.split())
    return step, status, shape, body, google_text


def google_auth_exception(step: str, body: str) -> Exception:
    """What google-auth raises for this body: STS through its OAuth error handler, IAM Credentials as
    ``RefreshError("Unable to acquire impersonated credentials", body)``."""
    if step == "impersonation":
        return google_exceptions.RefreshError("Unable to acquire impersonated credentials", body)
    try:
        oauth_utils.handle_error_response(body)
    except Exception as exc:  # noqa: BLE001 - whatever google-auth raises for it
        return exc
    raise AssertionError("handle_error_response always raises")


def expected_fragments(step: str, status: int) -> list[str] | None:
    if status >= 500:
        return EXPECTED[(step, 500)]
    return EXPECTED.get((step, status))


def check(error: WifExchangeError, step: str, status: int, shape: str, google_text: str) -> None:
    message = str(error)
    assert error.step == step
    assert message.startswith(f"{STEP_TITLES[step]} failed ({step}): ")
    assert f"HTTP {status}" in message
    assert error.status == status
    if shape in ("json_oauth", "json_api", "random_text", "json_scalar"):
        assert google_text[:40].strip() in message, (google_text, message)
    else:
        assert google_text in message, message
    fix_without_doctor = re.sub(r"(Then )?`?(run )?`?gcp-wif doctor[^`]*`?( checks each step)?\.?", "", error.fix)
    assert len(fix_without_doctor.strip(" .;")) > 40, error.fix
    fragments = expected_fragments(step, status)
    for fragment in fragments or []:
        assert fragment in error.fix, (step, status, fragment, error.fix)
    assert error.retryable == (status == 429 or status >= 500)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(answers())
def test_every_generated_answer_names_step_status_text_and_the_status_specific_fix(answer):
    step, status, shape, body, google_text = answer
    # The exchange hands the translator the failed answer's body too (google-auth can drop it: json_scalar).
    error = translate_exception(step, google_auth_exception(step, body), CONTEXT, status=status, body=body)
    check(error, step, status, shape, google_text)


@pytest.mark.parametrize("body", ["", json.dumps({"error": {"code": 404, "status": "NOT_FOUND",
                                                             "message": "Not found; Gaia id not found for email "
                                                                        "airflow-wif@wif-demo-project.iam."
                                                                        "gserviceaccount.com"}})])
def test_iam_credentials_404_says_the_service_account_was_not_found_and_how_to_check(body):
    error = translate_exception("impersonation", google_auth_exception("impersonation", body), CONTEXT, status=404)
    assert "service account airflow-wif@wif-demo-project.iam.gserviceaccount.com was not found" in error.fix
    assert "gcloud iam service-accounts describe" in error.fix


# -- the same, end to end: the emulator answers with the generated body ----------------------------------------


@pytest.fixture
def chain(emulator, settings_for, role_supplier):
    def fail_with(step: str, status: int, body: str, content_type: str) -> WifExchangeError:
        emulator.control.clear_faults()
        emulator.control.inject_faults("sts" if step == "sts_exchange" else "iam", statuses=[status], kinds=["body"],
                                       body=body, content_type=content_type, count=20)
        wif_credentials.clear_cache()
        try:
            with pytest.raises(WifExchangeError) as caught:
                get_credentials(settings_for(), role_supplier()).refresh(google.auth.transport.requests.Request())
        finally:
            emulator.control.clear_faults()
        return caught.value

    return fail_with


@settings(derandomize=True, max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answers())
def test_generated_answers_from_the_emulated_google_reach_the_user_with_status_and_fix(chain, answer):
    step, status, shape, body, google_text = answer
    content_type = "text/html; charset=UTF-8" if shape == "html" else "application/json; charset=UTF-8"
    error = chain(step, status, body, content_type)
    check(error, step, status, shape, google_text)
