"""The Airflow plugin (entry point ``airflow.plugins``; also usable from an MWAA ``plugins.zip``).

Airflow imports this module at the start of the scheduler, triggerer, dag processor, API server / webserver and
every task. Importing it is what activates the integration (``on_load`` may run twice per process in Airflow 3.3,
and the activation is idempotent anyway). It stays cheap: nothing here imports boto3, google-auth or the Google
provider; ``GoogleBaseHook`` is extended the moment something else imports it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_gcp_wif.integration import activate

activate()


class GcpWifPlugin(AirflowPlugin):
    """Activates ``gcp_wif`` connections for every stock Google hook in this process."""

    name = "gcp_wif"
