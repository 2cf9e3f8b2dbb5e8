"""Where secrets minted or read by the core are announced, so that a host (Airflow's secrets masker) can redact them.

The core imports no Airflow: :mod:`airflow_provider_gcp_wif.integration` registers Airflow's ``mask_secret`` here.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

_listeners: list[Callable[[str], None]] = []
# Digests of values already announced: a masker's add_mask is not free, and the same AWS secret is read on every
# exchange. Only digests are kept, never the values.
_announced: set[bytes] = set()


def add_listener(listener: Callable[[str], None]) -> None:
    """Call ``listener(value)`` for every secret value from now on (idempotent per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)
        _announced.clear()  # the new listener has not heard of anything yet


def announce(*values: str | None) -> None:
    """Tell every listener about these secret values (empty ones are skipped)."""
    for value in values:
        if not value:
            continue
        digest = hashlib.sha256(value.encode()).digest()
        if digest in _announced:
            continue
        if len(_announced) > 10_000:  # a process that lives for years: forget, and re-announce, once in a while
            _announced.clear()
        _announced.add(digest)
        for listener in _listeners:
            try:
                listener(value)
            except Exception:
                log.debug("gcp_wif: a secret listener failed", exc_info=True)
