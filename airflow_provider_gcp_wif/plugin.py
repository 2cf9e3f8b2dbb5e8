"""The Airflow plugin (entry point ``airflow.plugins``; also usable from an MWAA ``plugins.zip``).

Airflow imports this module at the start of the scheduler, triggerer, dag processor, API server / webserver and
every task. Importing it is what activates the integration (``on_load`` may run twice per process in Airflow 3.3,
and the activation is idempotent anyway). It stays cheap: nothing here imports boto3, google-auth or the Google
provider; ``GoogleBaseHook`` is extended the moment something else imports it.
"""

from __future__ import annotations

import logging
from importlib import metadata

from airflow.plugins_manager import AirflowPlugin

from airflow_provider_gcp_wif.extension import activate

#: The distributions whose versions the load line names (a failed pip install on MWAA is otherwise silent).
LOAD_LINE_DISTRIBUTIONS = ("airflow-provider-gcp-wif", "apache-airflow-providers-google", "google-auth")


def load_line() -> str:
    """One line naming the installed versions, read from the distributions' metadata (no heavy import)."""
    versions = []
    for name in LOAD_LINE_DISTRIBUTIONS:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} NOT INSTALLED")
    return f"gcp_wif plugin loaded: {', '.join(versions)}"


activate()
logging.getLogger(__name__).info("%s", load_line())


class GcpWifPlugin(AirflowPlugin):
    """Activates ``gcp_wif`` connections for every stock Google hook in this process."""

    name = "gcp_wif"
