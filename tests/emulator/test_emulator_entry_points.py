"""``python -m airflow_provider_gcp_wif.testing`` and the cheap package import."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import requests


def test_module_prints_one_ready_line_and_exits_cleanly_on_sigterm(tmp_path):
    config = tmp_path / "fixture.json"
    config.write_text(json.dumps({"token_ttl": {"sts": 900}}))
    process = subprocess.Popen([sys.executable, "-m", "airflow_provider_gcp_wif.testing", "--config", str(config)],
                               stdout=subprocess.PIPE, text=True)
    try:
        timer = threading.Timer(60, process.kill)
        timer.start()
        line = process.stdout.readline()
        timer.cancel()
        info = json.loads(line)
        for key in ("aws_endpoint", "sts_endpoint", "iam_endpoint", "storage_host", "aws_region",
                    "aws_access_key_id", "aws_secret_access_key", "role_arn", "project_number", "pool_id",
                    "provider_id", "service_account", "bucket", "audience", "aws_account_id", "control_url",
                    "untrusted_aws_access_key_id", "untrusted_aws_secret_access_key", "untrusted_aws_account_id",
                    "env"):
            assert key in info, key
        assert info["sts_endpoint"].endswith("/v1/token")
        assert requests.get(f"{info['control_url']}/config", timeout=10).json()["token_ttl"]["sts"] == 900
    finally:
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    assert returncode == 0
    assert process.stdout.read() == ""


def test_importing_the_package_does_not_import_moto_or_werkzeug():
    code = ("import sys, airflow_provider_gcp_wif.testing as t; t.DEFAULT_CONFIG; "
            "print(sorted(m for m in ('moto', 'werkzeug', 'boto3', 'requests') if m in sys.modules))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert output.strip() == "[]"
