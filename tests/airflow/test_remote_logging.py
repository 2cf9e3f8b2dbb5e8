"""GCS remote task logs with ``remote_log_conn_id`` set to a ``gcp_wif`` connection: the stock handler builds a
stock ``GCSHook`` for that connection, so the log goes to (emulated) Cloud Storage as the connection's service
account with no key anywhere. In process, through the stock handler's own write path."""

from __future__ import annotations

import pytest

from airflow_provider_gcp_wif.credentials import WifCredentials

pytestmark = pytest.mark.usefixtures("plugin_loaded")


@pytest.fixture
def remote_log_conn(wif_env, monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "gcp_wif_default")
    return wif_env


def test_gcs_task_handler_uploads_a_task_log_as_the_service_account(remote_log_conn, emulator, tmp_path):
    from airflow.providers.google.cloud.log.gcs_task_handler import GCSTaskHandler

    info = remote_log_conn
    remote = f"gs://{info['bucket']}/logs/dag_id=d/run_id=r/task_id=t/attempt=1.log"
    handler = GCSTaskHandler(base_log_folder=str(tmp_path), gcs_log_folder=f"gs://{info['bucket']}/logs")
    io = getattr(handler, "io", handler)  # Airflow 3: GCSRemoteLogIO; 2.11: the handler itself
    write = getattr(io, "write", None) or handler.gcs_write

    assert write("line 1 of the task log", remote) is True
    assert write("line 2 of the task log", remote) is True  # appends: reads the old log first

    credentials, _ = io.hook.get_credentials_and_project_id()
    assert isinstance(credentials, WifCredentials)
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    stored = GCSHook(gcp_conn_id="gcp_wif_default").download(info["bucket"], remote.split("/", 3)[3]).decode()
    assert stored == "line 1 of the task log\nline 2 of the task log"
    storage = emulator.control.requests("storage")
    writes = [r for r in storage if r["method"] in ("POST", "PUT")]
    assert writes and {r["principal"] for r in storage} == {info["service_account"]}
    assert len(emulator.control.requests("sts")) == 1
