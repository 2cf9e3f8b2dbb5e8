"""No Google token, AWS secret, session token, subject token or Authorization header ends up in task logs at DEBUG,
in error messages, reprs or the connection test message; the credential file given to child processes is private
(0600 in a 0700 directory), carries no secret and is gone after use.

Two kinds of record are left out of the scan:
* ``airflow dags test`` (only it: the in-process test supervisor) logs every ``mask_secret`` value at DEBUG
  ("Sending request ... msg=MaskSecret(value=...)"); a real task supervisor omits the body (upstream; see
  docs/reliability.md).
* botocore's own wire logging (``botocore.auth`` / ``botocore.endpoint`` / ``botocore.parsers`` at DEBUG): its
  records still show the request's ``Authorization`` header (the access key id; the signature is ``***``), which
  this scan's shapes count as a leak. What they must not show — a replayable signature, the role's secret key or
  session token, a JWT — is checked on those very records by tests/reliability/test_aws_request_debug_logs.py
  (the provider's filters in masking.py blank them before any handler).
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.integration import binding_of
from tests.airflow_process import airflow, airflow_environment, everything_written, migrate

from .leak_scan import leaks


def test_the_example_dag_at_debug_writes_no_secret_to_task_logs(emulator, tmp_path):
    home = tmp_path / "home"
    env = airflow_environment(emulator, home, AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG")  # the example DAGs
    migrate(env)
    result = airflow(["dags", "test", "example_gcs_wif"], env, check=False)
    written = everything_written(result, home)
    assert result.returncode == 0, written[-5000:]
    assert "gcp_wif: new Google token" in written, "DEBUG lines of the provider were written"
    assert emulator.control.requests("iam.generateAccessToken"), "tokens were really issued"
    found = leaks(written, {"static AWS secret key": emulator.info["aws_secret_access_key"]})
    assert not found, "\n".join(found[:20])


def test_the_leak_scan_finds_what_it_looks_for(emulator):
    """The scan above can fail: each shape matches what the secret really looks like."""
    samples = [
        "token ya29.emu-sa-AbCdEfGhIjKlMnOp",
        "{'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIA...'}",
        "headers={'authorization': 'Bearer abc'}",
        "SignedHeaders=host, Signature=" + "a" * 64,
        "'X-Amz-Security-Token': 'FQoGZXIvYXdzEBYaDRCJHFyUZVvjrl'",
        "%22x-goog-cloud-target-resource%22",
        "ASIARZPUZDIKFC33HSKG:" + "b" * 40,
    ]
    for sample in samples:
        assert leaks(sample, {}), sample
    assert leaks("secret: s3cr3t", {"x": "s3cr3t"})
    assert not leaks("2026-01-01T00:00:00Z Sending request msg=MaskSecret(value='ya29.emu-sa-AbCdEfGhIjKl')", {})
    assert leaks("2026-01-01T00:00:00Z [debug] x\n2026-01-01T00:00:01Z token ya29.emu-sa-AbCdEfGhIjKl [ours]", {})


# -- in process: the connection test message, errors, reprs, the credential file ---------------------------------


@pytest.fixture
def wif_connection(wif_env):
    """The emulator's `gcp_wif_default` and `aws_default` connections in this process, the plugin loaded."""
    from importlib.metadata import entry_points

    (plugin,) = [ep for ep in entry_points(group="airflow.plugins") if ep.name == "gcp_wif"]
    plugin.load()
    return wif_env


def literal_secrets(hook) -> dict[str, str]:
    """The secrets of the hook's shared credentials (exchanged here: the Test button uses its own)."""
    from google.auth.transport.requests import Request

    binding = binding_of(hook)
    credentials = binding.credentials()
    credentials.refresh(Request())
    aws = binding.supplier.get_aws_security_credentials(None, None)
    federated = credentials.chain.federated
    return {"Google token": credentials.token, "federated token": federated.token,
            "AWS secret key": aws.secret_access_key, "AWS session token": aws.session_token,
            "subject token": federated.retrieve_subject_token(Request())}


def test_connection_test_messages_errors_and_reprs_carry_no_secret(wif_connection, emulator):
    from airflow_provider_gcp_wif.hooks.gcp_wif import GcpWifHook

    hook = GcpWifHook()
    ok, message = hook.test_connection()
    assert ok, message
    secrets = literal_secrets(hook)
    binding = binding_of(hook)
    credentials = binding.credentials()
    emulator.control.remove_bindings(wif_connection["service_account"])
    with pytest.raises(WifExchangeError) as caught:
        credentials.force_refresh()
    failed_ok, failed_message = hook.test_connection()
    surfaces = {
        "test message": message, "failed test message": failed_message,
        "error": str(caught.value) + repr(caught.value) + repr(caught.value.__cause__),
        "reprs": repr(credentials) + repr(binding) + repr(binding.settings) + repr(binding.supplier) + repr(hook),
    }
    assert not failed_ok and "add-iam-policy-binding" in failed_message
    for surface, text in surfaces.items():
        for name, secret in secrets.items():
            assert secret and secret not in text, f"{name} is in the {surface}"
        assert not leaks(text, {}), surface


def test_the_credential_file_for_child_processes_is_private_secret_free_and_removed(wif_connection, tmp_path,
                                                                                     monkeypatch):
    from airflow_provider_gcp_wif.hooks.gcp_wif import GcpWifHook

    # A temp directory of this test's own, so that other processes on the machine (the matrix runs beside this
    # suite) cannot add or remove gcp-wif-* entries while "nothing left" is checked.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    hook = GcpWifHook()
    before = set(Path(tempfile.gettempdir()).glob("gcp-wif-*"))
    assert Path(tempfile.gettempdir()) == private
    snapshot = dict(os.environ)
    with hook.provide_gcp_credential_file_as_context() as path:
        file = Path(path)
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700
        content = file.read_text()
        config = json.loads(content)
        assert config["type"] == "external_account"
        aws = hook._gcp_wif.credentials().supplier.get_aws_security_credentials(None, None)  # what is served
        secrets = {aws.secret_access_key, aws.session_token}
        assert not any(secret in content for secret in secrets), "no AWS secret in the file"
        assert not secrets & set(os.environ.values()), "no AWS secret in the environment (children read an endpoint)"
        assert not leaks(content, {})
    assert not file.exists() and not file.parent.exists()
    assert set(Path(tempfile.gettempdir()).glob("gcp-wif-*")) == before, "nothing left in the temp directory"
    assert dict(os.environ) == snapshot, "the task's environment is restored exactly"
