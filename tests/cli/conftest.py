"""Fixtures for the command line: the emulated clouds as the seed's variables or as Airflow connections. The helpers
the tests import (run_cli, statuses, ...) are in tests/cli/running.py: no test imports a conftest. The core's fixtures
(tests/fixtures.py) are shared rather than copied; like the core's, every test here starts and ends with an empty
credential cache (tests/fixtures.py's _every_test_has_a_fresh_cache)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def conn_env(aws_env, monkeypatch):
    """The emulator's own `env`: AIRFLOW_CONN_AWS_DEFAULT (role_arn wif-role) and AIRFLOW_CONN_GCP_WIF_DEFAULT."""
    for name in [n for n in __import__("os").environ if n.startswith("GCP_") or n == "AWS_ROLE_NAME"]:
        monkeypatch.delenv(name)
    for key, value in aws_env["env"].items():
        monkeypatch.setenv(key, value)
    return aws_env


@pytest.fixture
def set_conn(monkeypatch):
    """Define (or replace) a connection through its AIRFLOW_CONN_* variable."""

    def define(conn_id: str, conn_type: str, extra: dict, **fields) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type, "extra": extra,
                                                                            **fields}))

    return define
