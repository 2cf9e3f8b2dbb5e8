"""The Airflow plugin (entry point ``airflow.plugins``): Airflow imports it at the start of every component and task.

Importing it must stay cheap: nothing here imports boto3, google-auth or the Google provider.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class GcpWifPlugin(AirflowPlugin):
    """Registers the provider with every Airflow process."""

    name = "gcp_wif"
