"""Provider metadata for Airflow's provider manager (entry point ``apache_airflow_provider``).

Metadata only: importing this module imports nothing heavy (no Airflow, boto3 or google-auth).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_gcp_wif import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-gcp-wif",
        "name": "Google Cloud via AWS Workload Identity Federation",
        "description": "Keyless Google Cloud access for Airflow on AWS (MWAA, ECS, EKS, EC2): a `gcp_wif` "
        "connection turns an Airflow AWS connection's identity into Google credentials.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "gcp_wif",
                "hook-class-name": "airflow_provider_gcp_wif.hooks.gcp_wif.GcpWifHook",
            }
        ],
    }
