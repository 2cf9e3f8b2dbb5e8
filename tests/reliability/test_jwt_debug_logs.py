"""``federation: jwt`` at DEBUG: botocore's wire logging (``botocore.parsers`` prints every AWS answer's body) must
not print the JWT our own GetWebIdentityToken call brought back: it is logged while botocore parses the answer,
before the provider holds the token and can announce it to any masker. The oracle is the JWT itself (the one the
emulated Google STS received) searched in every record of every logger, formatted and raw."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import masking

pytestmark = pytest.mark.usefixtures("aws_env")


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.name} {self.format(record)} {record.__dict__!r}")


@pytest.fixture
def every_record_at_debug():
    root = logging.getLogger()
    handler = _Everything()
    saved = {name: logging.getLogger(name).level for name in ("", "botocore", "urllib3", "google")}
    root.addHandler(handler)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield handler.texts
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _pieces(jwt: str) -> list[str]:
    _header, payload, signature = jwt.split(".")
    return [jwt, payload, signature]


def test_botocore_debug_logging_of_our_get_web_identity_token_shows_no_jwt(
        emulator, role_supplier, jwt_settings, every_record_at_debug, monkeypatch):
    from airflow_provider_gcp_wif.chain import web_identity_token_supplier
    from airflow_provider_gcp_wif.credentials import get_credentials
    from airflow_provider_gcp_wif.transport import exchange_transport

    monkeypatch.setattr(masking, "_listeners", [])  # no host masker: the records themselves must be clean
    supplier = role_supplier()
    get_credentials(jwt_settings, supplier).refresh(exchange_transport())
    jwt = web_identity_token_supplier(jwt_settings, supplier)._token
    assert jwt and jwt.count(".") == 2
    assert [r.get("oidc_sub") for r in emulator.control.requests("sts")] == [emulator.info["role_arn"]]
    logged = "\n".join(every_record_at_debug)
    assert "GetWebIdentityToken" in logged, "botocore's wire logging was on for the call"
    found = [piece[:12] for piece in _pieces(jwt) if piece in logged]
    assert not found, f"JWT parts in the DEBUG log: {found}"


def test_the_filter_leaves_other_botocore_records_alone(every_record_at_debug):
    """Narrow: an answer that is not GetWebIdentityToken's is logged as botocore wrote it."""
    masking.redact_botocore_wire_secrets()
    body = b"<GetCallerIdentityResponse><Arn>arn:aws:iam::123456789012:user/x</Arn></GetCallerIdentityResponse>"
    logging.getLogger("botocore.parsers").debug("Response body:\n%r", body)
    assert any(repr(body) in text for text in every_record_at_debug)


_B64URL = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=8, max_size=400)


def _filtered(msg: str, *args: object) -> str:
    record = logging.LogRecord("botocore.parsers", logging.DEBUG, __file__, 1, msg, args or None, None)
    assert masking.BotocoreWireSecretRedactor().filter(record)
    return record.getMessage()


@settings(max_examples=300, derandomize=True, deadline=None)
@given(payload=_B64URL, signature=_B64URL, json_form=st.booleans(), as_bytes=st.booleans())
def test_any_web_identity_token_answer_is_logged_without_its_jwt(payload, signature, json_form, as_bytes):
    """Property: whatever the JWT's bytes, in either wire form botocore may log (query XML, JSON), as bytes or text,
    none of its parts survives the filter, and the rest of the answer is exactly as it was."""
    jwt = f"eyJhbGciOiJSUzI1NiJ9.{payload}.{signature}"
    body = (json.dumps({"WebIdentityToken": jwt, "Expiration": 1.7e9}) if json_form else
            "<GetWebIdentityTokenResponse><GetWebIdentityTokenResult><WebIdentityToken>"
            f"{jwt}</WebIdentityToken><Expiration>2026-11-28T05:00:00Z</Expiration></GetWebIdentityTokenResult>"
            "</GetWebIdentityTokenResponse>")
    raw = body.encode() if as_bytes else body
    redacted = body.replace(jwt, "***")  # and nothing else changed
    # A part that is also a piece of the answer around the JWT (hypothesis once drew "WebIdent") would be found
    # there, filter or not: the absence check is only meaningful for parts the rest of the answer does not hold.
    assume(payload not in repr(redacted) and signature not in repr(redacted))
    shown = _filtered("Response body:\n%r", raw)
    assert payload not in shown and signature not in shown
    assert shown == f"Response body:\n{(redacted.encode() if as_bytes else redacted)!r}"


@settings(max_examples=300, derandomize=True, deadline=None)
@given(text=st.text(max_size=300))
def test_records_without_credentials_are_untouched(text):
    """Property: the filter is narrow, a botocore record that names no credential member and holds nothing
    JWT-shaped reads exactly as botocore wrote it."""
    assume(not any(word in text for word in ("Token", "SecretAccessKey", "secretAccessKey", "SecretKey", "eyJ")))
    assert _filtered("Response body:\n%r", text) == f"Response body:\n{text!r}"


def test_a_jwt_task_at_debug_writes_no_jwt_anywhere_botocore_included(emulator, tmp_path):
    """A real task (``airflow dags test``) on a ``federation: jwt`` connection, Airflow at DEBUG (botocore's wire
    logging and google-auth's request logging on): the JWT the emulated STS received, and the tokens it and IAM
    issued, are nowhere in stdout, stderr or the task logs, botocore's own lines included (before the filter,
    botocore.parsers' "Response body" line held the JWT)."""
    from tests.airflow_process import airflow, airflow_environment, everything_written, migrate

    from .token_oracle import known_tokens, tokens_in

    connection = json.loads(emulator.info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])
    connection["extra"].update(federation="jwt", provider_id=emulator.info["jwt_provider_id"])
    home = tmp_path / "home"
    env = airflow_environment(emulator, home, AIRFLOW__CORE__DAGS_FOLDER=str(Path(__file__).parent / "dags"),
                              AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG", GOOGLE_SDK_PYTHON_LOGGING_SCOPE="google",
                              AIRFLOW_CONN_GCP_WIF_DEFAULT=json.dumps(connection))
    migrate(env)
    result = airflow(["dags", "test", "wif_google_auth_debug"], env, timeout=300, check=False)
    written = everything_written(result, home)
    assert result.returncode == 0, written[-5000:]
    assert "GetWebIdentityToken" in written and "Response body" in written, "botocore's wire logging was on"
    exchanges = emulator.control.requests("sts")
    assert exchanges and exchanges[-1].get("oidc_sub") == emulator.info["role_arn"], "the jwt route was taken"
    # `airflow dags test`'s in-process supervisor logs each mask_secret value (upstream; a real supervisor does not).
    scanned = "\n".join(line for line in written.splitlines()
                         if not ("msg=MaskSecret(" in line and "Sending request" in line))
    found = tokens_in(scanned, known_tokens(emulator))
    assert not found, found


@pytest.mark.parametrize("federation", ["sigv4", "jwt"])
def test_a_child_process_inheriting_google_auth_debug_logging_prints_no_credential(
        emulator, role_supplier, settings_for, monkeypatch, federation):
    """A stock child (Beam/Dataflow runner, a script) spawned inside ``credential_file`` with this process's
    environment: were ``GOOGLE_SDK_PYTHON_LOGGING_SCOPE`` passed on, its google-auth (which our log filter does not
    reach) would print the subject token of its STS request (the JWT, or the signed request) and, on sigv4, the AWS
    secret key and session token the loopback endpoint answered: it did before. The context hides that variable."""
    import os
    import subprocess
    import sys

    from airflow_provider_gcp_wif.chain import web_identity_token_supplier
    from airflow_provider_gcp_wif.child_credentials import credential_file
    from airflow_provider_gcp_wif.integration import WifBinding

    from .token_oracle import known_tokens, tokens_in

    monkeypatch.setenv("GOOGLE_SDK_PYTHON_LOGGING_SCOPE", "google")  # someone debugging Google calls
    route = {"federation": "jwt", "provider_id": emulator.info["jwt_provider_id"]} if federation == "jwt" else {}
    settings = settings_for(**route)
    binding = WifBinding(settings, role_supplier())
    child = ("from google.api_core import client_logging; client_logging.initialize_logging(); "
             "import google.auth, google.auth.transport.requests, os; "
             "c, _ = google.auth.load_credentials_from_file(os.environ['GOOGLE_APPLICATION_CREDENTIALS']); "
             "c = c.with_scopes(['https://www.googleapis.com/auth/cloud-platform']); "
             "c.refresh(google.auth.transport.requests.Request()); print('token', bool(c.token))")
    with credential_file(settings, binding.credentials):
        done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                              env=dict(os.environ))
    assert done.returncode == 0 and "token True" in done.stdout, done.stderr[-2000:]
    assert os.environ["GOOGLE_SDK_PYTHON_LOGGING_SCOPE"] == "google", "restored after the context"
    output = done.stdout + done.stderr
    aws = binding.supplier.get_aws_security_credentials(None, None)
    secrets = {"AWS secret key": aws.secret_access_key, "AWS session token": aws.session_token or "-" * 40}
    if federation == "jwt":
        jwt = web_identity_token_supplier(settings, binding.supplier)._token
        assert jwt
        secrets.update(zip(("JWT", "JWT payload", "JWT signature"), _pieces(jwt), strict=True))
    found = [name for name, value in secrets.items() if value in output]
    found += tokens_in(output, known_tokens(emulator))
    assert not found, found
