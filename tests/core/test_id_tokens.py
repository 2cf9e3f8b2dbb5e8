"""ID tokens (IAM Credentials generateIdToken as the impersonated service account), end to end against the
emulated clouds: the token verifies against the emulator's certificates, is cached per audience, renewed ahead
of expiry, shares the STS exchange, refuses redirects and says what to do without a service account."""

from __future__ import annotations

import http.server
import json
import threading
import time

import google.auth.transport.requests
import pytest
from google.oauth2 import id_token as google_id_token
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import id_tokens, masking
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifConfigError, WifExchangeError
from airflow_provider_gcp_wif.id_tokens import get_id_token

AUDIENCE = "https://hello-abc123-ew.a.run.app"
REQUEST = google.auth.transport.requests.Request()


@pytest.fixture(autouse=True)
def fresh_id_tokens():
    id_tokens.clear_cache()
    yield
    id_tokens.clear_cache()


def verified(emulator, token, audience=AUDIENCE):
    return google_id_token.verify_token(token, REQUEST, audience=audience,
                                        certs_url=emulator.info["id_token_certs_url"])


def calls(emulator, endpoint):
    return len(emulator.control.requests(endpoint))


def test_id_token_is_signed_for_the_service_account_and_audience(emulator, settings_for, role_supplier):
    token = get_id_token(get_credentials(settings_for(), role_supplier()), AUDIENCE)

    claims = verified(emulator, token)
    assert claims["aud"] == AUDIENCE
    assert claims["email"] == emulator.info["service_account"]
    assert claims["iss"] == "https://accounts.google.com"
    assert claims["sub"].isdigit()
    assert 3500 < claims["exp"] - time.time() <= 3600
    (call,) = emulator.control.requests("iam.generateIdToken")
    assert call["principal"].startswith("principal://") and "assumed-role/wif-role" in call["principal"]


def test_the_floor_is_one_sts_exchange_and_one_generate_id_token(emulator, settings_for, role_supplier):
    # Only the ID-token permission: the federated identity may not mint access tokens for the account.
    info = emulator.info
    emulator.control.remove_bindings(info["service_account"])
    emulator.control.add_binding(info["service_account"], "roles/iam.serviceAccountOpenIdTokenCreator",
                                 f"principalSet://iam.googleapis.com/projects/{info['project_number']}/locations/"
                                 f"global/workloadIdentityPools/{info['pool_id']}/attribute.aws_role/"
                                 f"arn:aws:sts::{info['aws_account_id']}:assumed-role/wif-role")

    token = get_id_token(get_credentials(settings_for(), role_supplier()), AUDIENCE)

    assert [r["endpoint"] for r in emulator.control.requests()] == ["sts", "iam.generateIdToken"]
    assert verified(emulator, token)["email"] == info["service_account"]


def test_two_calls_mint_once_and_another_audience_mints_again(emulator, settings_for, role_supplier):
    credentials = get_credentials(settings_for(), role_supplier())

    first = get_id_token(credentials, AUDIENCE)
    second = get_id_token(get_credentials(settings_for(), role_supplier()), AUDIENCE)
    other = get_id_token(credentials, "https://other-abc123-ew.a.run.app")

    assert first == second
    assert verified(emulator, other, "https://other-abc123-ew.a.run.app")["aud"] == "https://other-abc123-ew.a.run.app"
    assert calls(emulator, "iam.generateIdToken") == 2
    assert calls(emulator, "sts") == 1


def test_access_and_id_tokens_share_one_sts_exchange(emulator, settings_for, role_supplier):
    credentials = get_credentials(settings_for(), role_supplier())
    credentials.refresh(REQUEST)

    get_id_token(credentials, AUDIENCE)

    assert calls(emulator, "sts") == 1
    assert calls(emulator, "iam.generateAccessToken") == 1


def test_a_token_near_its_expiry_is_renewed(emulator, settings_for, role_supplier):
    credentials = get_credentials(settings_for(), role_supplier())
    credentials.federated_token(REQUEST)
    emulator.control.set_clock_offset(-3400)  # the next ID token is minted "3400 s ago": 200 s left
    near_expiry = get_id_token(credentials, AUDIENCE)
    emulator.control.set_clock_offset(0)

    renewed = get_id_token(credentials, AUDIENCE)

    assert renewed != near_expiry
    assert verified(emulator, renewed)["exp"] - time.time() > 3500
    assert calls(emulator, "iam.generateIdToken") == 2


def test_many_threads_at_once_mint_one_token(emulator, settings_for, role_supplier):
    credentials = get_credentials(settings_for(), role_supplier())
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(get_id_token(credentials, AUDIENCE)))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(results) == 8 and len(set(results)) == 1
    assert calls(emulator, "iam.generateIdToken") == 1


def test_a_chain_mints_for_the_last_account_through_its_delegates(emulator, settings_for, role_supplier):
    info = emulator.info
    chain = f"{info['service_account']},{info['target_service_account']}"

    token = get_id_token(get_credentials(settings_for(impersonation_chain=chain), role_supplier()), AUDIENCE)

    assert verified(emulator, token)["email"] == info["target_service_account"]


def test_without_a_service_account_the_error_says_what_to_do_before_any_request(emulator, settings_for,
                                                                                role_supplier):
    credentials = get_credentials(settings_for(impersonation_chain=None), role_supplier())

    with pytest.raises(WifConfigError) as caught:
        get_id_token(credentials, AUDIENCE)

    assert caught.value.field == "impersonation_chain"
    assert "STS issues access tokens only" in str(caught.value)
    assert "roles/iam.workloadIdentityUser" in caught.value.fix
    assert emulator.control.requests() == []


@pytest.mark.parametrize("audience", ["", "  ", "https://a.run.app extra", None])
def test_a_malformed_audience_is_refused_before_any_request(emulator, settings_for, role_supplier, audience):
    with pytest.raises(WifConfigError, match="audience"):
        get_id_token(get_credentials(settings_for(), role_supplier()), audience)
    assert emulator.control.requests() == []


def test_a_missing_grant_names_the_step_and_the_binding_to_add(emulator, settings_for, role_supplier):
    emulator.control.remove_bindings(emulator.info["service_account"])

    with pytest.raises(WifExchangeError) as caught:
        get_id_token(get_credentials(settings_for(), role_supplier()), AUDIENCE)

    assert caught.value.step == "impersonation"
    assert "getOpenIdToken" in caught.value.reason
    assert "add-iam-policy-binding" in caught.value.fix and "attribute.aws_role" in caught.value.fix


def test_a_transient_failure_is_retried(emulator, settings_for, role_supplier):
    emulator.control.inject_faults("iam.generateIdToken", statuses=[503])

    token = get_id_token(get_credentials(settings_for(num_retries=2), role_supplier()), AUDIENCE)

    assert verified(emulator, token)
    assert [r["status"] for r in emulator.control.requests("iam.generateIdToken")] == [503, 200]


def test_a_redirect_is_not_followed(emulator, settings_for, role_supplier):
    target = emulator.info["iam_endpoint"]

    class Redirector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(307)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = settings_for(iam_endpoint=f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(WifExchangeError, match="redirect"):
            get_id_token(get_credentials(settings, role_supplier()), AUDIENCE)
    finally:
        server.shutdown()
        server.server_close()
    assert calls(emulator, "iam.generateIdToken") == 0


def test_the_id_token_is_announced_to_the_secrets_masker(emulator, settings_for, role_supplier):
    heard: list[str] = []
    masking.add_listener(heard.append)
    try:
        token = get_id_token(get_credentials(settings_for(), role_supplier()), AUDIENCE)
    finally:
        masking._listeners.remove(heard.append)
    assert token in heard


class _OneAnswer(http.server.BaseHTTPRequestHandler):
    """Answers every POST with HTTP 200 and the server's ``answer`` body (an IAM Credentials endpoint gone odd)."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = self.server.answer
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@settings(max_examples=10, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60),
    # JWT-shaped but not one whose expiry can be read
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", *[st.text("abcXYZ019-_", min_size=1, max_size=12)] * 3),
))
def test_a_200_whose_token_is_not_a_readable_jwt_is_still_announced_to_the_masker(emulator, settings_for,
                                                                                  role_supplier, token):
    """Whatever Google (or what answers in its place) called the token in a 200 is a secret, readable or not: it is
    announced before it is decoded, so the error that follows and any log of the answer cannot show it."""
    id_tokens.clear_cache()
    heard: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OneAnswer)
    server.answer = json.dumps({"token": token}).encode()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    masking.add_listener(heard.append)
    try:
        settings = settings_for(iam_endpoint=f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(WifExchangeError, match="without a readable ID token") as caught:
            get_id_token(get_credentials(settings, role_supplier()), AUDIENCE)
    finally:
        masking._listeners.remove(heard.append)
        server.shutdown()
        server.server_close()
    assert caught.value.step == "impersonation"
    assert token in heard
