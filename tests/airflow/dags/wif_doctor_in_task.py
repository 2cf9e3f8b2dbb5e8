"""Test DAG: `gcp-wif doctor` from a task, both ways users try it. `doctor_in_task` calls the doctor's API in the
task process (the way that works on Airflow 3 for a connection in the metadata database); `doctor_in_bash` runs the
CLI from a BashOperator and records its output and exit status in GCP_WIF_TEST_OUTPUT for the test to read."""

from __future__ import annotations

import os
import sys
from datetime import datetime

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.bash import BashOperator
    from airflow.operators.python import PythonOperator


def doctor_in_task() -> None:
    from airflow_provider_gcp_wif.cli.doctor_command import doctor

    checks = doctor(os.environ["GCP_WIF_TEST_CONN_ID"])
    with open(os.environ["GCP_WIF_TEST_OUTPUT"] + ".task", "w") as out:
        out.write(" ".join(f"{c['check']}={c['status']}" for c in checks))


with DAG(dag_id="wif_doctor_in_task", start_date=datetime(2026, 1, 1), schedule=None, catchup=False):
    PythonOperator(task_id="doctor_in_task", python_callable=doctor_in_task)
    BashOperator(
        task_id="doctor_in_bash",
        bash_command=f"{sys.executable} -m airflow_provider_gcp_wif.cli doctor --conn-id $GCP_WIF_TEST_CONN_ID "
        "> $GCP_WIF_TEST_OUTPUT.bash.log 2>&1; echo exit=$? >> $GCP_WIF_TEST_OUTPUT.bash.log",
        append_env=True,
    )
