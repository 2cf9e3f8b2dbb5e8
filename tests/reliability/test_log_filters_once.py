"""The log redactors are installed once per process, before the first request they guard: google-auth's with the
exchange transport, botocore's wire redactor when an AWS supplier is made (before its session, and a role_arn's
AssumeRole, exist; not on every GetWebIdentityToken call); a forked child keeps them, and installing again never
stacks a second copy. Run in a fresh interpreter, so nothing another test installed counts."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHILD = r"""
import logging, os
from airflow_provider_gcp_wif import masking
from airflow_provider_gcp_wif.supplier import Boto3Supplier, WebIdentityTokenSupplier

def count(loggers, kind):
    return [sum(isinstance(f, kind) for f in logging.getLogger(n).filters) for n in loggers]

BOTO, GOOGLE = masking.BOTOCORE_WIRE_LOGGERS, masking.GOOGLE_AUTH_TRANSPORT_LOGGERS
assert count(BOTO, masking.BotocoreWireSecretRedactor) == [0] * len(BOTO), "nothing before it is needed"
Boto3Supplier(lambda: None, identity_key="k")  # no call to AWS: the session (a role_arn's AssumeRole) on first use
assert count(BOTO, masking.BotocoreWireSecretRedactor) == [1] * len(BOTO), "there before the first AWS answer"
WebIdentityTokenSupplier(Boto3Supplier(lambda: None, identity_key="k"), "https://aud")  # no call to AWS
assert count(BOTO, masking.BotocoreWireSecretRedactor) == [1] * len(BOTO), "there before the first call"
from airflow_provider_gcp_wif.transport import exchange_transport
exchange_transport()
assert count(GOOGLE, masking.GoogleAuthLogRedactor) == [1] * len(GOOGLE)
for _ in range(3):
    masking.redact_botocore_wire_secrets()
    masking.redact_google_auth_logs()
    WebIdentityTokenSupplier(Boto3Supplier(lambda: None, identity_key="k"), "https://aud")
pid = os.fork()
if pid == 0:
    masking.redact_botocore_wire_secrets()
    exchange_transport()  # the child's own transport
    ok = (count(BOTO, masking.BotocoreWireSecretRedactor) == [1] * len(BOTO)
          and count(GOOGLE, masking.GoogleAuthLogRedactor) == [1] * len(GOOGLE))
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
assert count(BOTO, masking.BotocoreWireSecretRedactor) == [1] * len(BOTO)
assert count(GOOGLE, masking.GoogleAuthLogRedactor) == [1] * len(GOOGLE)
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_redactors_are_installed_once_before_they_are_needed_and_survive_a_fork():
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
