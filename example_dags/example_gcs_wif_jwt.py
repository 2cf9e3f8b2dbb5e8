"""Stock Google Cloud Storage operators on the `federation: "jwt"` route (AWS outbound identity federation).

The connection `gcp_wif_jwt` is a `gcp_wif` connection like `gcp_wif_default` plus `"federation": "jwt"`, naming
the pool's OIDC provider that trusts the AWS account's issuer (`gcp-wif setup --federation jwt` prints both sides
and the connection). Each task's AWS identity asks AWS STS GetWebIdentityToken for a five-minute JWT for that
provider, and Google exchanges the JWT: no signed AWS request ever leaves AWS. Nothing in the tasks differs from
the `sigv4` route: only `gcp_conn_id` names the connection.

    export AIRFLOW_CONN_GCP_WIF_JWT='{"conn_type": "gcp_wif", "extra": {"aws_conn_id": "aws_default",
        "project_number": "PROJECT_NUMBER", "pool_id": "airflow-aws", "provider_id": "aws-jwt",
        "impersonation_chain": "SA_EMAIL", "project": "PROJECT_ID", "federation": "jwt"}}'

Needs botocore >= 1.41 (MWAA 2.11.2, 3.2.1, 3.3.1); see docs/security.md. Bucket: "<project>-wif-jwt-example".
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.google.cloud.operators.gcs import (
    GCSCreateBucketOperator,
    GCSDeleteBucketOperator,
    GCSListObjectsOperator,
)
from airflow.providers.google.cloud.transfers.local_to_gcs import LocalFilesystemToGCSOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.11
    from airflow import DAG

CONN_ID = "gcp_wif_jwt"
PROJECT = "{{ conn.gcp_wif_jwt.extra_dejson.project }}"
BUCKET = "{{ conn.gcp_wif_jwt.extra_dejson.project }}-wif-jwt-example"

with DAG(
    dag_id="example_gcs_wif_jwt",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "gcp_wif", "jwt"],
    doc_md=__doc__,
) as dag:
    create_bucket = GCSCreateBucketOperator(
        task_id="create_bucket", bucket_name=BUCKET, project_id=PROJECT, gcp_conn_id=CONN_ID
    )
    upload = LocalFilesystemToGCSOperator(
        task_id="upload_this_dag", src=__file__, dst="dags/example_gcs_wif_jwt.py", bucket=BUCKET, gcp_conn_id=CONN_ID
    )
    list_objects = GCSListObjectsOperator(task_id="list", bucket=BUCKET, prefix="dags/", gcp_conn_id=CONN_ID)
    delete_bucket = GCSDeleteBucketOperator(
        task_id="delete_bucket", bucket_name=BUCKET, force=True, gcp_conn_id=CONN_ID
    )

    create_bucket >> upload >> list_objects >> delete_bucket
