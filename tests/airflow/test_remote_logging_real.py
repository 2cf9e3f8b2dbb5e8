"""GCS remote task logs through a ``gcp_wif`` ``remote_log_conn_id`` with real Airflow components (Airflow 3:
api-server, dag-processor, scheduler with LocalExecutor, whose task supervisor uploads the log; 2.11: scheduler
with SequentialExecutor): the task's log lands in the emulated bucket, written as the connection's service account."""

from __future__ import annotations

import shutil
import urllib.parse
import uuid

import pytest
import requests

from tests.airflow_process import (
    TEST_DAGS,
    airflow,
    components_environment,
    free_port,
    migrate,
    query,
    start_components,
    wait_for,
    wait_for_api_server,
)

pytestmark = pytest.mark.real_processes

DAG_ID = "gcp_wif_remote_log_proof"


def test_a_task_log_is_uploaded_to_gcs_as_the_service_account(emulator, tmp_path, components):
    info = emulator.info
    marker = f"remote-log-marker-{uuid.uuid4().hex}"
    home = tmp_path / "airflow-home"
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(TEST_DAGS / f"{DAG_ID}.py", dags)
    api_port = free_port()
    environment = components_environment(
        emulator, home, dags, api_port,
        AIRFLOW__LOGGING__REMOTE_LOGGING="True",
        AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER=f"gs://{info['bucket']}/task-logs",
        AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID="gcp_wif_default",
        GCP_WIF_REMOTE_LOG_MARKER=marker,
    )
    migrate(environment)
    emulator.control.clear_log()
    start_components(components, api_port, environment, tmp_path)

    wait_for(lambda: query(home, "SELECT dag_id FROM serialized_dag"), 120, components, "the DAG to be serialized")
    wait_for_api_server(api_port, components)
    airflow(["dags", "unpause", DAG_ID], environment)
    airflow(["dags", "trigger", DAG_ID], environment)

    state = wait_for(lambda: (rows := query(home, "SELECT state FROM dag_run")) and rows[0][0] in ("success", "failed")
                     and rows[0][0], 240, components, "the DAG run to finish", interval=2)
    assert state == "success"
    writes = wait_for(lambda: [e for e in emulator.control.requests("storage") if e["method"] in ("POST", "PUT")],
                      60, components, "the log upload", interval=2)

    # Uploaded by Airflow's own handler through the gcp_wif connection, as the service account ...
    assert {e["principal"] for e in writes} == {info["service_account"]}, writes
    # ... and it is this task's log (read back without a token: the emulator serves token-less reads).
    base = f"{info['storage_host']}/storage/v1/b/{info['bucket']}/o"
    names = [item["name"] for item in requests.get(base, params={"prefix": "task-logs/"}, timeout=30).json()
             .get("items", [])]
    ours = [name for name in names if f"dag_id={DAG_ID}" in name]
    assert ours, names
    texts = [requests.get(f"{base}/{urllib.parse.quote(name, safe='')}", params={"alt": "media"}, timeout=30).text
             for name in ours]
    assert any(marker in text for text in texts), texts
