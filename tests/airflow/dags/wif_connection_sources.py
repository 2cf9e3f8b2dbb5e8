"""Test DAG: a stock GCSHook in a task, with the connection id taken from GCP_WIF_TEST_CONN_ID (so one DAG checks
connections defined through the CLI, a secrets backend, ...)."""

from __future__ import annotations

import os
from datetime import datetime

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.python import PythonOperator


def list_bucket() -> list[str]:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    hook = GCSHook(gcp_conn_id=os.environ["GCP_WIF_TEST_CONN_ID"])
    hook.upload(bucket_name=os.environ["GCP_WIF_TEST_BUCKET"], object_name="sources/ok.txt", data="ok")
    return hook.list(os.environ["GCP_WIF_TEST_BUCKET"], prefix="sources/")


with DAG(dag_id="wif_connection_sources", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    PythonOperator(task_id="list_bucket", python_callable=list_bucket)
