"""The connection defined every way users define it, used by a stock hook inside a real task (`airflow dags test`):
an `airflow connections add` row in the metadata database and a secrets backend (the JSON environment variable and
URI forms are covered in-process by test_integration.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .connections import extra_of

DAGS = Path(__file__).parent / "dags"
AIRFLOW = [sys.executable, "-m", "airflow"]


@pytest.fixture
def airflow_env(emulator, tmp_path):
    info = emulator.info
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AWS_"))}
    env.update(info["env"])
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AWS_EC2_METADATA_DISABLED": "true",
        "GCP_WIF_TEST_BUCKET": info["bucket"],
    })
    run(env, "db", "migrate")
    return info, env


def run(env, *args, timeout=300):
    result = subprocess.run([*AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def test_connection_added_with_the_cli_is_used_by_a_task(airflow_env, emulator):
    info, env = airflow_env
    run(env, "connections", "add", "gcp_wif_cli", "--conn-type", "gcp_wif", "--conn-extra", json.dumps(extra_of(info)))
    env = {**env, "GCP_WIF_TEST_CONN_ID": "gcp_wif_cli"}
    env.pop("AIRFLOW_CONN_GCP_WIF_DEFAULT")
    run(env, "dags", "test", "wif_connection_sources")
    uploads = [r for r in emulator.control.requests("storage") if r["method"] == "POST"]
    assert uploads and uploads[-1]["status"] == 200 and uploads[-1]["principal"] == info["service_account"]
    assert len(emulator.control.requests("sts")) == 1


def test_connection_from_a_secrets_backend_is_used_by_a_task(airflow_env, emulator, tmp_path):
    info, env = airflow_env
    connections = tmp_path / "connections.json"
    connections.write_text(json.dumps({"gcp_wif_secret": {"conn_type": "gcp_wif", "extra": extra_of(info)}}))
    env = {
        **env,
        "GCP_WIF_TEST_CONN_ID": "gcp_wif_secret",
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)}),
    }
    env.pop("AIRFLOW_CONN_GCP_WIF_DEFAULT")
    run(env, "dags", "test", "wif_connection_sources")
    uploads = [r for r in emulator.control.requests("storage") if r["method"] == "POST"]
    assert uploads and uploads[-1]["status"] == 200 and uploads[-1]["principal"] == info["service_account"]
