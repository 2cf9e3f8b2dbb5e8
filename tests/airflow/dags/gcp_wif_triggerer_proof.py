"""Test-only DAG: one deferrable task whose trigger authenticates to (emulated) Cloud Storage in the triggerer; with
``GCP_WIF_PROOF_JWT_CONN`` set, a second one doing the same through that (``federation: "jwt"``) connection."""

from __future__ import annotations

import os
from datetime import datetime

from gcp_wif_proof_trigger import TokenProofOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

with DAG(dag_id="gcp_wif_triggerer_proof", start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    TokenProofOperator(task_id="token_in_triggerer", bucket=os.environ.get("GCP_WIF_PROOF_BUCKET", "wif-demo-bucket"))
    if os.environ.get("GCP_WIF_PROOF_JWT_CONN"):
        TokenProofOperator(task_id="token_in_triggerer_jwt", gcp_conn_id=os.environ["GCP_WIF_PROOF_JWT_CONN"],
                           bucket=os.environ.get("GCP_WIF_PROOF_BUCKET", "wif-demo-bucket"))
