"""What the commands share: exit statuses, the usage error, one-line messages, and where ``token`` and ``doctor``
read the settings from (an Airflow connection, or the seed's environment variables). Imports nothing heavy: the
parser in ``cli/__init__.py`` uses its constants."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_gcp_wif.constants import CONN_TYPE

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DISTRIBUTION = "airflow-provider-gcp-wif"
SUBJECT_LIMIT_BYTES = 127
MWAA_PLUGINS_DIR = "/usr/local/airflow/plugins"
#: The Python of each Amazon MWAA image (aws/amazon-mwaa-docker-images).
MWAA_IMAGE_PYTHON = {"2.9.2": "3.11", "2.10.1": "3.11", "2.10.3": "3.11", "2.11.0": "3.12", "2.11.2": "3.12",
                     "3.0.6": "3.12", "3.2.1": "3.12", "3.3.1": "3.12"}
PLUGIN_MODULE_NAME = "gcp_wif_plugin.py"
FEDERATIONS = ("sigv4", "jwt")


class UsageError(Exception):
    """A command-line problem that is not a ``gcp_wif`` setting (unknown connection, missing file, ...)."""


# ---------------------------------------------------------------------------------------------------------------
# Where the settings come from: an Airflow connection, or the seed's environment variables
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Source:
    """Validated settings and the AWS identity source, plus how to name them in output."""

    settings: WifSettings
    supplier: Boto3Supplier
    label: str


def airflow_connection(conn_id: str) -> Any:
    """The connection as tasks see it (environment variables, secrets backends, metadata database)."""
    try:
        from airflow.sdk import BaseHook
    except ImportError:  # Airflow 2.11
        # mypy reads Airflow 3, whose airflow.hooks.base only names BaseHook through a deprecation shim
        from airflow.hooks.base import BaseHook  # type: ignore[attr-defined, no-redef]
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as err:  # AirflowNotFoundException differs between Airflow 2 and 3
        if in_airflow3_task_subprocess():
            raise UsageError(f"connection {conn_id!r} could not be read: {err}. {AIRFLOW3_SUBPROCESS_ADVICE}") from err
        raise UsageError(
            f"connection {conn_id!r} could not be read: {err}. Define it (e.g. AIRFLOW_CONN_"
            f"{conn_id.upper()}='{{\"conn_type\": \"gcp_wif\", \"extra\": {{...}}}}') or check the secrets backend."
        ) from err


#: What to do when the doctor runs in a process a task started (BashOperator) on Airflow 3.
AIRFLOW3_SUBPROCESS_ADVICE = (
    "This is a process started by an Airflow 3 task (e.g. a BashOperator): it has no task context, and the task "
    "SDK gives no process direct access to the metadata database, so a connection stored there (UI, `airflow "
    "connections add`) cannot be read here; connections from environment variables or a secrets backend can. "
    "Run the doctor inside the task instead: `from airflow_provider_gcp_wif.cli.doctor_command import doctor` and call "
    "`doctor(\"CONN_ID\")` in a @task function or PythonOperator callable (it prints the same checklist to the "
    "task log and fails the task when a check fails)."
)


def in_airflow3_task_subprocess() -> bool:
    """Whether this process was started by an Airflow 3 task (BashOperator exports AIRFLOW_CTX_*) and is not the
    task itself (a task process has the supervisor's comms; a child has not)."""
    if "AIRFLOW_CTX_TASK_ID" not in os.environ:
        return False
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        return Version(version("apache-airflow")) >= Version("3")
    except PackageNotFoundError:
        return False


def load_source(conn_id: str | None) -> Source:
    """Raises ``WifConfigError`` for a bad setting and :class:`UsageError` for a missing/foreign connection."""
    if conn_id:
        connection = airflow_connection(conn_id)
        conn_type = getattr(connection, "conn_type", None)
        if conn_type != CONN_TYPE:
            raise UsageError(f"connection {conn_id!r} has type {conn_type!r}, not {CONN_TYPE!r}.")
        from airflow_provider_gcp_wif.integration import WifBinding

        binding = WifBinding.for_hook(conn_id, connection.extra_dejson)
        return Source(binding.settings, binding.supplier, f"connection {conn_id!r}")
    from airflow_provider_gcp_wif.token_service import TokenService

    service = TokenService.from_env()
    return Source(service.settings, service.supplier, "the seed's environment variables")


def _request() -> Any:
    import google.auth.transport.requests

    return google.auth.transport.requests.Request()


def one_line(message: object, limit: int = 2000) -> str:
    """``message`` as one bounded line: whitespace and control characters collapse to single spaces."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(message)[: 2 * limit]).split())
    return text if len(text) <= limit else text[:limit] + "..."
