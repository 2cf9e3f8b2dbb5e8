"""``GcpWifHook``: Google Cloud credentials from an Airflow AWS connection, through Workload Identity Federation."""

from __future__ import annotations

from typing import Any

from airflow.providers.google.common.hooks.base_google import GoogleBaseHook


class GcpWifHook(GoogleBaseHook):
    """A ``GoogleBaseHook`` for connections of type ``gcp_wif``."""

    conn_name_attr = "gcp_conn_id"
    default_conn_name = "gcp_wif_default"
    conn_type = "gcp_wif"
    hook_name = "Google Cloud (AWS Workload Identity Federation)"

    def __init__(self, gcp_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(gcp_conn_id=gcp_conn_id, **kwargs)
