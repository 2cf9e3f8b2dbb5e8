"""Fixtures for the command line: the emulated clouds as the seed's variables or as Airflow connections."""

from __future__ import annotations

import hashlib
import io
import json
import re

import pytest

from airflow_provider_gcp_wif import cli


@pytest.fixture(autouse=True)
def _every_test_has_a_fresh_cache(fresh_cache):
    """The core's fixtures (tests/fixtures.py) are shared rather than copied; like the core's, every test here starts
    and ends with an empty credential cache."""
    yield


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


def gcp_wif_extra(info: dict, **changes) -> dict:
    extra = dict(json.loads(info["env"]["AIRFLOW_CONN_GCP_WIF_DEFAULT"])["extra"])
    extra.update(changes)
    return {k: v for k, v in extra.items() if v is not None}


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def printed_token_fingerprints(text: str) -> set[str]:
    """Fingerprints (as the emulator logs them) of every word in ``text``."""
    return {hashlib.sha256(word.encode()).hexdigest()[:16] for word in re.split(r"[\s\"'`,;()]+", text) if word}


def issued_token_fingerprints(emulator) -> set[str]:
    found = set()
    for entry in emulator.control.requests():
        for key in ("issued_token_fingerprint", "token_fingerprint"):
            if entry.get(key):
                found.add(entry[key])
    return found


def statuses(output: str) -> dict[str, str]:
    """{check name: OK/WARN/FAIL/SKIP} from the doctor's checklist."""
    result = {}
    for line in output.splitlines():
        match = re.match(r"^\[(?: OK |WARN|FAIL|SKIP)\] (.+?)  ", line)
        if match:
            result[match.group(1).strip()] = line[1:5].strip()
    return result
