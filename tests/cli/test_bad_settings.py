"""The console script with bad settings: one clean line on stderr naming the field, a non-zero exit status, no
traceback, nothing sent anywhere, and no credential typed into an endpoint echoed back. Run as a real subprocess
(``gcp-wif``), from the seed's variables and from an Airflow connection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

GCP_WIF = str(Path(sys.executable).with_name("gcp-wif"))
SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
SEED = {"GCP_PROJECT_NUMBER": "734501234567", "GCP_WORKLOAD_ID": "aws-pool", "GCP_WORKLOAD_PROVIDER": "aws-provider",
        "GCP_SERVICE_ACCOUNT_EMAIL": SA, "AWS_REGION": "us-east-1"}
CONN = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider",
        "impersonation_chain": SA}
SECRET = "hunter2-SECRET-in-the-url"
# A port nothing listens on: were anything sent, the command would fail with a connection error instead.
DEAD = "http://127.0.0.1:9"


def run(argv: list[str], env_changes: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GCP_", "AIRFLOW_CONN_", "TOKEN_"))}
    env.update({"AWS_ACCESS_KEY_ID": "AKIAFAKE", "AWS_SECRET_ACCESS_KEY": "fake", "AWS_ENDPOINT_URL_STS": DEAD,
                "AWS_EC2_METADATA_DISABLED": "true", "AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS": ""})
    env.update(env_changes)
    return subprocess.run([GCP_WIF, *argv], capture_output=True, text=True, timeout=180, env=env)


def assert_one_clean_line(result: subprocess.CompletedProcess[str], field: str) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and field in lines[0], lines[0][:500]
    assert len(lines[0]) < 2100
    return lines[0]


SEED_CASES = {
    "project number of 100k digits": ({"GCP_PROJECT_NUMBER": "9" * 100_000}, "GCP_PROJECT_NUMBER"),
    # 0.0.0.0 is where old code would connect (this host): the test sends nothing off the machine either way.
    "backslash bypass": ({"GCP_WIF_STS_ENDPOINT": "https://0.0.0.0\\.googleapis.com/v1/token"},
                         "GCP_WIF_STS_ENDPOINT"),
    "unclosed IPv6 bracket": ({"GCP_WIF_IAM_ENDPOINT": "https://[x"}, "GCP_WIF_IAM_ENDPOINT"),
    "scope with a bracket": ({"TOKEN_SCOPES": "https://[x"}, "TOKEN_SCOPES"),
    "lifetime of 5000 digits": ({"TOKEN_LIFETIME": "9" * 5000}, "TOKEN_LIFETIME"),
    "fullwidth solidus": ({"GCP_WIF_STS_ENDPOINT": "https://sts.googleapis.com\uff0fv1"}, "GCP_WIF_STS_ENDPOINT"),
}


@pytest.mark.parametrize("command", ["token", "doctor"])
@pytest.mark.parametrize("changes, field", SEED_CASES.values(), ids=SEED_CASES.keys())
def test_bad_seed_variables_print_one_line_naming_the_variable(command, changes, field):
    result = run([command], {**SEED, **changes})
    assert_one_clean_line(result, field)


CONN_CASES = {
    "credential_config nested 50000 deep": ({"credential_config": "[" * 50_000 + "]" * 50_000}, "credential_config"),
    "header injection in quota project": ({"quota_project_id": "p\r\nX-Injected: yes"}, "quota_project_id"),
    "audience of the wrong type in credential_config": (
        {"credential_config": {"type": "external_account", "audience": 5,
                               "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request"}},
        "credential_config"),
    "a megabyte project": ({"project": "x" * 1024 * 1024}, "project"),
}


@pytest.mark.parametrize(("command", "changes", "field"),
                         [("token", *case) for case in CONN_CASES.values()]
                         + [("doctor", *CONN_CASES["credential_config nested 50000 deep"])],
                         ids=[*CONN_CASES, "doctor"])
def test_a_bad_connection_prints_one_line_naming_the_field(command, changes, field, tmp_path):
    # A megabyte does not fit in one environment variable: the connection comes from a local secrets file.
    connections = tmp_path / "connections.json"
    connections.write_text(json.dumps({"gcp_wif_bad": {"conn_type": "gcp_wif", "extra": {**CONN, **changes}}}))
    backend = {"AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
               "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"connections_file_path": str(connections)})}
    result = run([command, "--conn-id", "gcp_wif_bad"], backend)
    assert_one_clean_line(result, field)


@pytest.mark.parametrize("endpoint", [f"https://user:{SECRET}@sts.googleapis.com/v1/token",
                                      f"https://sts.googleapis.com/v1/token?key={SECRET}",
                                      f"https://evil.example/v1/token#{SECRET}",
                                      f"https://{SECRET}@0.0.0.0\\@sts.googleapis.com/v1/token"])
def test_a_credential_typed_into_an_endpoint_is_not_echoed(endpoint):
    result = run(["token"], {**SEED, "GCP_WIF_STS_ENDPOINT": endpoint})
    line = assert_one_clean_line(result, "GCP_WIF_STS_ENDPOINT")
    assert SECRET not in result.stderr + result.stdout, line


def test_bad_setup_flags_print_one_line():
    result = subprocess.run([GCP_WIF, "setup", "--project-id", "wif-demo-project", "--project-number", "9" * 100_000,
                             "--aws-account-id", "123456789012", "--aws-role-name", "wif-role"],
                            capture_output=True, text=True, timeout=60)
    assert_one_clean_line(result, "--project-number")
