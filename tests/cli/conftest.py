"""Fixtures for the command line: the emulated clouds as the seed's variables or as Airflow connections."""

from __future__ import annotations

import hashlib
import io
import json
import re

import pytest

from airflow_provider_gcp_wif import cli
from airflow_provider_gcp_wif import credentials as wif_credentials


@pytest.fixture(autouse=True)
def fresh_cache():
    wif_credentials.clear_cache()
    yield
    wif_credentials.clear_cache()


@pytest.fixture
def aws_env(emulator, monkeypatch):
    """boto3's default chain = the fixture IAM user's static keys; AWS STS = moto."""
    info = emulator.info
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", info["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", info["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", info["aws_region"])
    monkeypatch.setenv("AWS_REGION", info["aws_region"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", info["aws_endpoint"])
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return info


@pytest.fixture
def seed_env(aws_env, monkeypatch):
    """The seed README's variables, pointed at the emulated clouds."""
    values = {
        "GCP_PROJECT_NUMBER": aws_env["project_number"],
        "GCP_WORKLOAD_ID": aws_env["pool_id"],
        "GCP_WORKLOAD_PROVIDER": aws_env["provider_id"],
        "GCP_SERVICE_ACCOUNT_EMAIL": aws_env["service_account"],
        "AWS_ACCOUNT_ID": aws_env["aws_account_id"],
        "AWS_ROLE_NAME": "wif-role",
        "AWS_REGION": aws_env["aws_region"],
        "GCP_WIF_STS_ENDPOINT": aws_env["sts_endpoint"],
        "GCP_WIF_IAM_ENDPOINT": aws_env["iam_endpoint"],
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


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
