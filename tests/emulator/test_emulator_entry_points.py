"""``python -m airflow_provider_gcp_wif.testing`` and the cheap package import."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import pytest
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


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.1", "localhost.example", "::ffff:127.0.0.1"])
def test_module_refuses_a_non_loopback_host_without_the_explicit_flag(host):
    """The emulator mints tokens for anyone who can reach it: it must not listen on the network by accident."""
    process = subprocess.Popen([sys.executable, "-m", "airflow_provider_gcp_wif.testing", "--host", host],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(60, process.kill)
    timer.start()
    try:
        ready = process.stdout.readline()  # the ready line if it serves; "" once it exits
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
        out, err = process.communicate()
    assert ready == "", f"--host {host!r} was served: {ready[:200]}"
    assert process.returncode == 2 and out == ""
    assert "--allow-non-loopback" in err and "refusing to listen" in err and "Traceback" not in err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1"])
def test_the_python_api_refuses_a_non_loopback_host_unless_allowed(host):
    from airflow_provider_gcp_wif.testing.aws import AwsEmulator
    from airflow_provider_gcp_wif.testing.bind import NonLoopbackHostError
    from airflow_provider_gcp_wif.testing.emulator import CloudEmulator

    with pytest.raises(NonLoopbackHostError):
        CloudEmulator(host=host)
    with pytest.raises(NonLoopbackHostError):
        AwsEmulator(host=host)
    # Explicitly allowed (constructed only: nothing listens until start()).
    assert CloudEmulator(host=host, allow_non_loopback=True).server.host == host


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.255.255.254", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("", False), ("128.0.0.1", False),
    ("::ffff:127.0.0.1", False), ("localhost.evil.example", False), ("127.0.0.1.nip.io", False),
])
def test_what_counts_as_loopback(host, loopback):
    from airflow_provider_gcp_wif.testing.bind import is_loopback

    assert is_loopback(host) is loopback


def test_a_loopback_host_other_than_127_0_0_1_is_served():
    process = subprocess.Popen([sys.executable, "-m", "airflow_provider_gcp_wif.testing", "--host", "127.0.0.2"],
                               stdout=subprocess.PIPE, text=True)
    try:
        timer = threading.Timer(60, process.kill)
        timer.start()
        info = json.loads(process.stdout.readline())
        timer.cancel()
        assert info["sts_endpoint"].startswith("http://127.0.0.2:")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
