"""google-auth's own request/response logging, switched on in a real Airflow task at DEBUG, shows no subject token,
federated token or access token.

google-auth (newer releases; 2.34 and older do not) logs every request and response it makes, headers and bodies, as structured fields of its log
records once ``GOOGLE_SDK_PYTHON_LOGGING_SCOPE=google`` is set and a Google client initialises logging. Those records
go to google-api-core's own stderr handler, which no Airflow masker sees, and a response is logged before the
provider holds the token it carries. The tokens are judged by the emulator's request log (``token_oracle``): the
subject token STS received, the federated token it issued, the token IAM Credentials issued, the token Storage got.

``airflow dags test`` logs each ``mask_secret`` value at DEBUG ("Sending request ... MaskSecret"): that upstream
exposure, and botocore's wire logging, are left out of the scan as in ``test_secrets_stay_secret``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import google.auth.transport.requests
import pytest
from google.auth import _helpers

from airflow_provider_gcp_wif.credentials import get_credentials
from tests.airflow_process import airflow, airflow_environment, everything_written, migrate

from .leak_scan import leaks, upstream_exposure
from .token_oracle import known_tokens, tokens_in

DAGS = Path(__file__).parent / "dags"

pytestmark = pytest.mark.skipif(not hasattr(_helpers, "request_log"),
                                reason="this google-auth has no request/response logging (2.34 and older)")


def test_google_auth_debug_logging_in_a_task_shows_none_of_the_exchange_tokens(emulator, tmp_path):
    home = tmp_path / "home"
    env = airflow_environment(emulator, home, AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
                              AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG", GOOGLE_SDK_PYTHON_LOGGING_SCOPE="google")
    migrate(env)
    result = airflow(["dags", "test", "wif_google_auth_debug"], env, timeout=300, check=False)
    written = everything_written(result, home)
    assert result.returncode == 0, written[-5000:]

    google_auth_records = [line for line in written.splitlines() if '"httpRequest"' in line]
    assert any("/v1/token" in line for line in google_auth_records), "google-auth logged the STS request"
    assert any(":generateAccessToken" in line for line in google_auth_records), "... and the IAM request"
    known = known_tokens(emulator)
    assert {"subject token of sts", "token of sts", "issued token of iam.generateAccessToken"} <= set(
        known.values()), "an exchange really happened"
    assert emulator.control.requests("storage"), "and an API call with its token"

    scanned = "\n".join(line for line in written.splitlines() if not upstream_exposure(line))
    found = tokens_in(scanned, known)
    assert not found, found
    assert not leaks(scanned, {}), leaks(scanned, {})[:5]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(f"{record.getMessage()} {record.__dict__!r}")


def test_in_process_google_auth_records_of_an_exchange_hold_no_token(emulator, settings_for, role_supplier):
    """The same without Airflow, with the ``google`` logger configured in code (Google's other documented way)."""
    google_logger = logging.getLogger("google")
    records = _Records()
    level, propagate = google_logger.level, google_logger.propagate
    google_logger.addHandler(records)
    google_logger.setLevel(logging.DEBUG)
    try:
        credentials = get_credentials(settings_for(), role_supplier())
        credentials.refresh(google.auth.transport.requests.Request())
    finally:
        google_logger.removeHandler(records)
        google_logger.setLevel(level)
        google_logger.propagate = propagate
    assert credentials.valid, "the exchange worked: the redaction never touches the request itself"
    text = "\n".join(records.texts)
    assert "httpRequest" in text and ":generateAccessToken" in text, "google-auth logged both requests"
    known = known_tokens(emulator)
    assert len(known) >= 3
    assert not tokens_in(text, known), tokens_in(text, known)
