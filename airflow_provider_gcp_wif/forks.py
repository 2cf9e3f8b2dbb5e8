"""What a forked child does first: the provider's after-fork handlers, in one declared order.

A forked child (Celery's prefork pool, LocalExecutor, Airflow 2's task runner, the 3.x triggerer's runner) keeps
only the thread that forked: locks other threads held stay held forever, and connection pools, boto3 sessions and
lock-file descriptors are shared with the parent. Each module that holds such state registers a handler here, under
one of the order constants below; this module owns the only ``os.register_at_fork`` call and runs the handlers in
the child by ascending order, whatever order the modules were imported in (``os.register_at_fork`` itself runs
child handlers in registration order, i.e. import order).

The order, and why:

1. :data:`CHILD_ENVIRONMENT` — ``os.environ`` overlays other threads had open are closed first, so every later
   handler (and the child) sees the child's own environment.
2. :data:`HOST_CACHE_LOCKS` — the child closes its copies of the host token cache's lock files, which would
   otherwise hold a lock its parent released.
3. :data:`EXCHANGE_TRANSPORT` — the exchange's transport (and its connection pool) is forgotten.
4. :data:`AWS_SUPPLIERS` — AWS and JWT suppliers get fresh locks and drop their boto3 sessions.
5. :data:`GOOGLE_CREDENTIALS` — shared credentials get fresh locks and rebuild their google-auth credentials,
   which takes the suppliers' locks: so after (4).
6. :data:`ID_TOKENS` — the ID token cache is emptied.

This module imports nothing of the provider (and no Airflow).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

CHILD_ENVIRONMENT = 10
HOST_CACHE_LOCKS = 20
EXCHANGE_TRANSPORT = 30
AWS_SUPPLIERS = 40
GOOGLE_CREDENTIALS = 50
ID_TOKENS = 60

_handlers: dict[int, Callable[[], None]] = {}
_handlers_lock = threading.Lock()


def register(order: int, handler: Callable[[], None]) -> None:
    """Run ``handler()`` in every forked child, at its place in ``order`` (one of this module's constants; lower runs
    first). One handler per order: registering the same function again (a reloaded module) replaces it, another
    function at a taken order raises ``ValueError``."""
    with _handlers_lock:
        current = _handlers.get(order)
        if current is not None and _name(current) != _name(handler):
            raise ValueError(f"fork handler order {order} is taken by {_name(current)}, not {_name(handler)}")
        _handlers[order] = handler


def handlers() -> list[tuple[int, Callable[[], None]]]:
    """The registered handlers, in the order a forked child runs them."""
    with _handlers_lock:
        return sorted(_handlers.items(), key=lambda item: item[0])


def _name(handler: Callable[[], None]) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"


def _run_in_child() -> None:
    global _handlers_lock
    _handlers_lock = threading.Lock()  # another thread may have been registering at the fork
    for _, handler in sorted(_handlers.items(), key=lambda item: item[0]):
        try:
            handler()
        except Exception:  # the later handlers must run all the same
            log.warning("gcp_wif: an after-fork handler failed in the child: %s", _name(handler), exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_run_in_child)
