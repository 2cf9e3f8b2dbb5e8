"""Calling a private Cloud Run service (or Cloud Function, or IAP-protected app) from Airflow on AWS: no key.

A private Cloud Run service accepts requests that carry a Google *ID token* whose audience is the service's URL and
whose account holds `roles/run.invoker` on it. `GcpWifHook.get_id_token(audience)` mints one for the `gcp_wif`
connection's service account (IAM Credentials `generateIdToken`, authorised by the AWS identity through Workload
Identity Federation), caches it per audience for the process and registers it with the secrets masker.

- the URL comes from the Airflow Variable `gcp_wif_example_cloud_run_url`;
- the token is used inside the task and never returned: a return value would be stored as an XCom.

Setup on Google's side: `gcloud run services add-iam-policy-binding SERVICE --region=REGION
--member=serviceAccount:airflow@PROJECT_ID.iam.gserviceaccount.com --role=roles/run.invoker`.
"""

from __future__ import annotations

from datetime import datetime

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.python import PythonOperator

CONN_ID = "gcp_wif_default"
URL = "{{ var.value.get('gcp_wif_example_cloud_run_url', 'https://hello-abc123-ew.a.run.app') }}"


def call_private_service(url: str) -> int:
    """GET ``url`` with an ID token whose audience is the service's base URL (what Cloud Run checks)."""
    from urllib.parse import urlsplit

    import requests

    from airflow_provider_gcp_wif.hooks.gcp_wif import GcpWifHook

    parts = urlsplit(url)
    audience = f"{parts.scheme}://{parts.netloc}"
    token = GcpWifHook(gcp_conn_id=CONN_ID).get_id_token(audience)
    response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    print(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
    response.raise_for_status()
    return response.status_code


with DAG(
    dag_id="example_id_token_wif",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "gcp_wif"],
    doc_md=__doc__,
) as dag:
    PythonOperator(task_id="call_private_service", python_callable=call_private_service, op_kwargs={"url": URL})
