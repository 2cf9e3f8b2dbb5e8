"""Every AWS identity source Airflow on AWS runs with, end to end through stock Google hooks, with
``aws_default`` = ``aws://`` and no AWS key in the environment, connection or files of the process: ECS / Fargate
container credentials, EKS Pod Identity, EKS IRSA, EC2 IMDSv2 and a ``role_arn``/``source_profile`` profile, each
served by the emulator's identity fakes (:mod:`airflow_provider_gcp_wif.testing.identities`) with temporary
credentials that the emulated AWS issued and really verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_gcp_wif.testing import CloudEmulator
from tests.airflow_process import airflow_environment

HOOKS = Path(__file__).resolve().parent / "identity_hooks.py"
SOURCES = ["ecs", "eks_pod_identity", "eks_irsa", "ec2_imds", "profile"]
SESSION_OF = {"ecs": "execution-role", "eks_pod_identity": "execution-role", "ec2_imds": "execution-role",
              "eks_irsa": "irsa-session", "profile": "profile-session"}
AWS_KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def run_hooks(emulator, source: str, home: Path, seconds: float = 0, interval: float = 1,
              timeout: float = 240) -> dict:
    env = airflow_environment(emulator, home, **emulator.info["aws_identity_sources"][source]["env"],
                              IDENTITY_TEST_BUCKET=emulator.info["bucket"], IDENTITY_TEST_PREFIX=f"{source}/")
    assert env["AIRFLOW_CONN_AWS_DEFAULT"] == "aws://"
    assert not any(name in env for name in AWS_KEY_VARIABLES)
    result = subprocess.run([sys.executable, str(HOOKS), str(seconds), str(interval)], env=env,
                            capture_output=True, text=True, timeout=timeout, check=False, cwd=home)
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("source", SOURCES)
def test_stock_hooks_work_with_each_keyless_aws_identity_source(emulator, source, tmp_path):
    info = emulator.info
    summary = run_hooks(emulator, source, tmp_path)

    assert summary["failures"] == [] and summary["objects"] == [f"{source}/00000.txt"]
    exchanges = emulator.control.requests("sts")
    assert exchanges and all(entry["status"] == 200 for entry in exchanges)
    expected = f"arn:aws:sts::{info['aws_account_id']}:assumed-role/wif-role/{SESSION_OF[source]}"
    assert {entry["aws_arn"] for entry in exchanges} == {expected}
    uploads = [entry for entry in emulator.control.requests("storage") if entry["method"] == "POST"]
    assert uploads and {entry["principal"] for entry in uploads} == {info["service_account"]}


def test_identity_fakes_refuse_what_the_real_ones_refuse(emulator):
    import requests

    sources = emulator.info["aws_identity_sources"]
    pod = sources["eks_pod_identity"]
    assert requests.get(pod["endpoint"], timeout=10).status_code == 401
    assert requests.get(pod["endpoint"], headers={"Authorization": "wrong"}, timeout=10).status_code == 401
    token = Path(pod["env"]["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]).read_text()
    assert requests.get(pod["endpoint"], headers={"Authorization": token}, timeout=10).json()["Token"]

    imds = sources["ec2_imds"]["endpoint"]
    credentials = f"{imds}/latest/meta-data/iam/security-credentials/"
    assert requests.get(credentials, timeout=10).status_code == 401, "IMDSv1 (no token) is refused"
    assert requests.put(f"{imds}/latest/api/token", timeout=10).status_code == 400, "a TTL is required"
    session = requests.put(f"{imds}/latest/api/token", timeout=10,
                           headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).text
    role = requests.get(credentials, headers={"X-aws-ec2-metadata-token": session}, timeout=10).text
    assert role == "wif-role"
    answer = requests.get(credentials + role, headers={"X-aws-ec2-metadata-token": session}, timeout=10).json()
    assert answer["Code"] == "Success" and answer["AccessKeyId"].startswith("ASIA")


LONG_RUN_SECONDS = 150
CREDENTIAL_TTL = 20


@pytest.mark.soak
def test_long_run_with_rotating_container_credentials_and_short_tokens_has_no_authentication_failure(tmp_path):
    """Container credentials live 20 s (rotated at half-life, and AWS answers ``ExpiredToken`` to each rotated-away
    key once its ``Expiration`` passed), federated and Google tokens 60 s: two and a half minutes of sync and async
    hook calls every second, with no authentication failure across the rotations."""
    with CloudEmulator(aws_credential_ttl=CREDENTIAL_TTL) as emulator:
        emulator.control.set_token_ttl(sts=60, iam=60)
        summary = run_hooks(emulator, "ecs", tmp_path, seconds=LONG_RUN_SECONDS, interval=1, timeout=600)

        assert summary["failures"] == []
        assert summary["rounds"] >= LONG_RUN_SECONDS // 4
        # botocore asks for credentials when the provider needs a new Google token (about once a minute here):
        # each time the previous key had already expired at AWS, so every exchange after the first one signed
        # with freshly rotated credentials.
        vendor = emulator.identities.vendor
        assert vendor.rotations >= LONG_RUN_SECONDS // 60 + 1
        exchanges = emulator.control.requests("sts")
        assert all(entry["status"] == 200 for entry in exchanges)
        assert len(exchanges) >= LONG_RUN_SECONDS // 60 + 1
        assert all(entry["status"] in (200, 404) for entry in emulator.control.requests("storage"))
