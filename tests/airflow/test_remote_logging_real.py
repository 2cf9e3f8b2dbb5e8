"""GCS remote task logs through a ``gcp_wif`` ``remote_log_conn_id`` with real Airflow components (Airflow 3:
api-server, dag-processor, scheduler with LocalExecutor, whose task supervisor uploads the log; 2.11: scheduler
with SequentialExecutor): the task's log lands in the emulated bucket, written as the connection's service account."""

from __future__ import annotations

import secrets
import shutil
import urllib.parse
import urllib.request
import uuid

import pytest
import requests

from tests.airflow_process import AIRFLOW_3, TEST_DAGS, Component, airflow, airflow_environment, migrate

from .test_real_processes import free_port, query, wait_for

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
    environment = airflow_environment(
        emulator, home,
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__EXECUTOR="LocalExecutor" if AIRFLOW_3 else "SequentialExecutor",
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{api_port}/execution/",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__WEBSERVER__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="2",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="5",
        AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
        AIRFLOW__LOGGING__REMOTE_LOGGING="True",
        AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER=f"gs://{info['bucket']}/task-logs",
        AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID="gcp_wif_default",
        GCP_WIF_REMOTE_LOG_MARKER=marker,
    )
    migrate(environment)
    emulator.control.clear_log()
    if AIRFLOW_3:
        components.append(Component("api-server", ["api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                                   "--workers", "1"], environment, tmp_path))
        components.append(Component("dag-processor", ["dag-processor"], environment, tmp_path))
    components.append(Component("scheduler", ["scheduler"], environment, tmp_path))

    wait_for(lambda: query(home, "SELECT dag_id FROM serialized_dag"), 120, components, "the DAG to be serialized")
    if AIRFLOW_3:
        def api_ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(api_ready, 120, components, "the API server")
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
