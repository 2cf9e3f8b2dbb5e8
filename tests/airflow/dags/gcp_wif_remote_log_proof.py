"""One task that prints a marker line: its task log must reach the remote log bucket (test_remote_logging_real)."""

from __future__ import annotations

import os
from datetime import datetime

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.python import PythonOperator


def say_marker() -> None:
    print(os.environ.get("GCP_WIF_REMOTE_LOG_MARKER", "no marker set"))


with DAG(dag_id="gcp_wif_remote_log_proof", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    PythonOperator(task_id="say_marker", python_callable=say_marker)
