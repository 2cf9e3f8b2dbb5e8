"""Keyless Google Cloud credentials for Airflow on AWS, through Workload Identity Federation.

Importing this package is cheap (Airflow imports the plugin at every process start): the seed-compatible
``TokenService`` and the core modules load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.token_service import TokenService

__all__ = ["TokenService", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "TokenService":
        from airflow_provider_gcp_wif.token_service import TokenService

        return TokenService
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
