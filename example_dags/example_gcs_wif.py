"""Stock Google Cloud Storage operators authenticating through a `gcp_wif` connection: no key anywhere.

Every task names only `gcp_conn_id="gcp_wif_default"`; the connection says which AWS connection's identity to
exchange and which service account to impersonate. The same file runs against the local emulated clouds
(`make demo`) and against real AWS + Google Cloud: change the two connections, nothing here.

- bucket: "<project>-wif-example", the project taken from the `gcp_wif_default` connection's `project` extra;
- `list_with_operator_chain` shows an operator-level `impersonation_chain` (Airflow Variable
  `gcp_wif_example_reader_chain`, default: the connection's own chain), which replaces the connection's chain;
- `wait_for_marker` is a deferrable sensor: its trigger runs in the triggerer, which authenticates on its own.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime

from airflow.providers.google.cloud.hooks.gcs import GCSHook
from airflow.providers.google.cloud.operators.gcs import (
    GCSCreateBucketOperator,
    GCSDeleteBucketOperator,
    GCSDeleteObjectsOperator,
    GCSListObjectsOperator,
)
from airflow.providers.google.cloud.sensors.gcs import GCSObjectExistenceSensor
from airflow.providers.google.cloud.transfers.gcs_to_gcs import GCSToGCSOperator
from airflow.providers.google.cloud.transfers.gcs_to_local import GCSToLocalFilesystemOperator
from airflow.providers.google.cloud.transfers.local_to_gcs import LocalFilesystemToGCSOperator

try:  # Airflow 3
    from airflow.providers.standard.operators.python import PythonOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG
    from airflow.operators.python import PythonOperator

CONN_ID = "gcp_wif_default"
PROJECT = "{{ conn.gcp_wif_default.extra_dejson.project }}"
BUCKET = "{{ conn.gcp_wif_default.extra_dejson.project }}-wif-example"
READER_CHAIN = (
    "{{ var.value.get('gcp_wif_example_reader_chain', conn.gcp_wif_default.extra_dejson.impersonation_chain) }}"
)
WORKDIR = os.path.join(tempfile.gettempdir(), "gcp-wif-example")
# One directory per DAG run: runs side by side on one worker (or test processes on one machine) would otherwise
# rewrite each other's files between a task that writes one and the task that reads it.
RUN_DIR = os.path.join(WORKDIR, "{{ run_id }}")
MARKER_DELAY_SECONDS = int(os.environ.get("GCP_WIF_EXAMPLE_MARKER_DELAY", "0"))


def write_local_file(directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "report.csv")
    with open(path, "w") as handle:
        handle.write("day,rows\n2026-11-26,42\n")
    return path


def put_marker(bucket: str) -> str:
    """A PythonOperator using the stock GCSHook directly, with the same connection."""
    import time

    time.sleep(MARKER_DELAY_SECONDS)  # lets a parallel deferrable sensor defer first in a real deployment
    hook = GCSHook(gcp_conn_id=CONN_ID)
    hook.upload(bucket_name=bucket, object_name="markers/ready.txt", data="ready")
    return hook.get_conn().project or ""


def check_download(path: str) -> int:
    with open(path) as handle:
        content = handle.read()
    if "2026-11-26,42" not in content:
        raise ValueError(f"unexpected content downloaded to {path}: {content!r}")
    return len(content)


with DAG(
    dag_id="example_gcs_wif",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "gcp_wif"],
    doc_md=__doc__,
) as dag:
    local_file = PythonOperator(task_id="write_local_file", python_callable=write_local_file, op_args=[RUN_DIR])
    create_bucket = GCSCreateBucketOperator(
        task_id="create_bucket", bucket_name=BUCKET, project_id=PROJECT, gcp_conn_id=CONN_ID
    )
    upload = LocalFilesystemToGCSOperator(
        task_id="upload",
        src="{{ ti.xcom_pull('write_local_file') }}",
        dst="data/report.csv",
        bucket=BUCKET,
        gcp_conn_id=CONN_ID,
    )
    list_objects = GCSListObjectsOperator(task_id="list", bucket=BUCKET, prefix="data/", gcp_conn_id=CONN_ID)
    copy = GCSToGCSOperator(
        task_id="copy",
        source_bucket=BUCKET,
        source_object="data/report.csv",
        destination_bucket=BUCKET,
        destination_object="copies/report.csv",
        gcp_conn_id=CONN_ID,
    )
    list_with_operator_chain = GCSListObjectsOperator(
        task_id="list_with_operator_chain",
        bucket=BUCKET,
        prefix="copies/",
        gcp_conn_id=CONN_ID,
        impersonation_chain=READER_CHAIN,
    )
    download = GCSToLocalFilesystemOperator(
        task_id="download",
        bucket=BUCKET,
        object_name="copies/report.csv",
        filename=os.path.join(RUN_DIR, "downloaded.csv"),
        gcp_conn_id=CONN_ID,
    )
    verify = PythonOperator(
        task_id="verify_download",
        python_callable=check_download,
        op_args=[os.path.join(RUN_DIR, "downloaded.csv")],
    )
    marker = PythonOperator(task_id="put_marker_with_gcs_hook", python_callable=put_marker, op_args=[BUCKET])
    wait_for_marker = GCSObjectExistenceSensor(
        task_id="wait_for_marker",
        bucket=BUCKET,
        object="markers/ready.txt",
        google_cloud_conn_id=CONN_ID,
        deferrable=True,
        poke_interval=2,
        timeout=300,
    )
    delete_objects = GCSDeleteObjectsOperator(
        task_id="delete_objects", bucket_name=BUCKET, prefix="", gcp_conn_id=CONN_ID
    )
    delete_bucket = GCSDeleteBucketOperator(task_id="delete_bucket", bucket_name=BUCKET, gcp_conn_id=CONN_ID)

    local_file >> create_bucket >> upload >> [list_objects, copy]
    copy >> [list_with_operator_chain, download]
    download >> verify
    if MARKER_DELAY_SECONDS:
        # Side by side: the sensor looks first, finds nothing and defers to the triggerer.
        copy >> [marker, wait_for_marker]
    else:
        # `airflow dags test` runs one task at a time: the marker goes first and the sensor finds it at once.
        copy >> marker >> wait_for_marker
    [list_objects, list_with_operator_chain, verify, marker, wait_for_marker] >> delete_objects >> delete_bucket
