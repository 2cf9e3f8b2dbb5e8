"""Test DAG: one stock-hook task with a retry, for a token request that fails for good."""

from __future__ import annotations

from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.python import PythonOperator


def list_bucket() -> list[str]:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook

    return GCSHook(gcp_conn_id="gcp_wif_default").list("wif-demo-bucket")


with DAG(dag_id="wif_task_retry", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    PythonOperator(task_id="list_bucket", python_callable=list_bucket, retries=1, retry_delay=timedelta(seconds=0))
