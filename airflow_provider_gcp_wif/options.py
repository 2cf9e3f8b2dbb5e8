"""The deployment's ``[gcp_wif]`` options (Airflow configuration, or ``AIRFLOW__GCP_WIF__<NAME>``).

They are the deployment's, not a connection's: connection extras cannot change them. Read when a hook binds a
``gcp_wif`` connection, by the secrets backend and by the doctor (outside a configured Airflow, the environment
variable alone).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from airflow_provider_gcp_wif.constants import CONFIG_SECTION

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.host_cache import HostTokenCache


def allowed_endpoint_hosts() -> str:
    """``[gcp_wif] allowed_endpoint_hosts`` (also ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS``)."""
    return _deployment_option("allowed_endpoint_hosts")


def _deployment_option(name: str) -> str:
    """``[gcp_wif] <name>`` from the Airflow configuration (also ``AIRFLOW__GCP_WIF__<NAME>``)."""
    try:
        from airflow.configuration import conf

        return str(conf.get(CONFIG_SECTION, name, fallback="") or "")
    except Exception:  # noqa: BLE001 - outside a configured Airflow: the environment variable alone
        return os.environ.get(f"AIRFLOW__GCP_WIF__{name.upper()}", "")


def host_token_cache() -> HostTokenCache | None:
    """The host-wide token cache when the deployment opted in (``[gcp_wif] token_cache = host``, directory
    ``[gcp_wif] token_cache_dir``), else ``None`` (the default, ``process``). Connection extras cannot change it."""
    mode = _deployment_option("token_cache").strip().lower() or "process"
    if mode == "process":
        return None
    if mode != "host":
        from airflow_provider_gcp_wif.errors import WifConfigError

        raise WifConfigError("[gcp_wif] token_cache", f"{mode!r} is not a token cache mode.",
                             "set it to process (the default: one token per process) or host (shared by the "
                             "processes of this OS user on this host), e.g. AIRFLOW__GCP_WIF__TOKEN_CACHE=host.")
    from airflow_provider_gcp_wif.host_cache import HostTokenCache

    return HostTokenCache(_deployment_option("token_cache_dir").strip() or None)
