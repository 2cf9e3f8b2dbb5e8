"""Fixtures for the reliability and security suite: the core's emulated-cloud fixtures (an AWS identity from moto,
settings pointing at the emulator, a clean credential cache), shared rather than copied."""

from __future__ import annotations

import google.auth.transport.requests
import pytest

from tests.core.conftest import aws_env, fresh_cache, make_settings, role_supplier, settings_for, user_supplier

__all__ = ["aws_env", "fresh_cache", "make_settings", "role_supplier", "settings_for", "user_supplier"]


@pytest.fixture
def google_request():
    """google-auth's requests transport, the one stock hooks use."""
    return google.auth.transport.requests.Request()


def endpoint_counts(emulator) -> tuple[int, int]:
    """(STS exchanges, generateAccessToken calls) in the emulator's request log, failed ones included."""
    counters = emulator.control.counters()
    return counters.get("sts", 0), counters.get("iam.generateAccessToken", 0)
