"""Test DAG: one exchange with google-auth's own request/response logging switched on (what a user debugging a
Google call does), to show that the task log at DEBUG carries no subject token, federated token or access token."""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.python import PythonOperator


def list_bucket_with_google_auth_debug_logging() -> list[str]:
    from airflow.providers.google.cloud.hooks.gcs import GCSHook
    from google.api_core import client_logging

    # GOOGLE_SDK_PYTHON_LOGGING_SCOPE=google (Google's documented switch) takes effect when a client initialises
    # logging, as every generated ("GAPIC") client does when it is built: google-auth then logs each request and
    # response, headers and bodies, as structured JSON.
    client_logging.initialize_logging()
    return GCSHook(gcp_conn_id="gcp_wif_default").list("wif-demo-bucket")


with DAG(dag_id="wif_google_auth_debug", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    PythonOperator(task_id="list_bucket", python_callable=list_bucket_with_google_auth_debug_logging)
