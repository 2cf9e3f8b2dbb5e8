"""A process forked while another thread holds the jwt route's shared-supplier lock can still build jwt
credentials (Celery prefork, LocalExecutor and the task runner fork at any moment)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from airflow_provider_gcp_wif import credentials as wif_credentials
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.supplier import Boto3Supplier

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def test_a_child_forked_while_the_jwt_supplier_lock_is_held_builds_jwt_credentials():
    settings = WifSettings.from_extras({"project_number": "734501234567", "pool_id": "aws-pool",
                                        "provider_id": "aws-jwt", "federation": "jwt"}, allowed_endpoint_hosts="")
    supplier = Boto3Supplier(lambda: None, identity_key="fork")  # type: ignore[arg-type,return-value]
    wif_credentials.get_credentials(settings, supplier)  # the parent holds jwt credentials, as a worker would
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with supplier._jwt_lock:  # the lock of the supplier's shared JWT suppliers
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    pid = os.fork()
    if pid == 0:  # the child: its inherited credentials are rebuilt by the fork handler, then it builds new ones
        signal.alarm(10)
        try:
            wif_credentials.get_credentials(settings.replace(project="p-12345"), supplier)
        except BaseException:  # noqa: BLE001
            os._exit(2)
        os._exit(0)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        release.set()
        holder.join(10)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
