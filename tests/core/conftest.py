"""The core's tests start and end with an empty credential cache; the emulated-cloud fixtures they use (aws_env,
settings_for, role_supplier, ...) are shared with tests/cli and tests/reliability from tests/fixtures.py."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _every_test_has_a_fresh_cache(fresh_cache):
    yield
