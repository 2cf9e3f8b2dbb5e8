"""Fixtures for the reliability and security suite. The core's emulated-cloud fixtures (an AWS identity from moto,
settings pointing at the emulator, a clean credential cache) come from tests/fixtures.py, shared rather than copied;
every test here starts and ends with an empty credential cache (tests/fixtures.py's _every_test_has_a_fresh_cache)."""

from __future__ import annotations

import google.auth.transport.requests
import pytest


@pytest.fixture
def google_request():
    """google-auth's requests transport, the one stock hooks use."""
    return google.auth.transport.requests.Request()


@pytest.fixture
def without_airflows_masker(monkeypatch):
    """For tests of retries, locks and time, not of masking: earlier tests of the session register Airflow's secrets
    masker as a listener, and Airflow's masker recompiles one regex of every secret it knows on each new one
    (quadratic; the README's known limits). Late in the full session a test that makes hundreds of exchanges would
    spend minutes there. Masking has its own tests (test_secrets_stay_secret.py, test_exception_chains_...,
    test_google_auth_debug_logs.py)."""
    from airflow_provider_gcp_wif import masking

    monkeypatch.setattr(masking, "_listeners", [])
