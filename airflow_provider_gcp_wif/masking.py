"""Where secrets minted or read by the core are announced, so that a host (Airflow's secrets masker) can redact them.

The core imports no Airflow: :mod:`airflow_provider_gcp_wif.integration` registers Airflow's ``mask_secret`` here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_listeners: list[Callable[[str], None]] = []


def add_listener(listener: Callable[[str], None]) -> None:
    """Call ``listener(value)`` for every secret value from now on (idempotent per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)


def announce(*values: str | None) -> None:
    """Tell every listener about these secret values (empty ones are skipped)."""
    for value in values:
        if not value:
            continue
        for listener in _listeners:
            try:
                listener(value)
            except Exception:
                log.debug("gcp_wif: a secret listener failed", exc_info=True)
