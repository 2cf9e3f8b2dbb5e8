"""Botocore sessions that share botocore's read-only data and built-in handlers: a speed-up of the cold path.

Every new botocore session parses the STS service model, its endpoint rule set and the endpoints and partitions files
again, and registers botocore's built-in event handlers one by one; ``AwsBaseHook`` makes two sessions per role it
assumes. :func:`shared_botocore_data` lets the sessions :class:`~airflow_provider_gcp_wif.supplier.Boto3Supplier`
creates share one data loader and start from a copy of one set of handlers, under the botocore versions it was
proven on (:data:`PROVEN_BOTOCORE`); under any other, botocore is left as it is. This module imports no Airflow.

What it is worth (``make bench`` on the development machine, botocore 1.44.18, the same tree with and without the
sharing, one after the other on a shared two-core machine):

=====================================================  ===============  ==================
                                                       with             without
=====================================================  ===============  ==================
cold first token (iii), median wall                    128.9 ms         255.9 ms
  client CPU per cold token                            16.4 ms          64.8 ms
  of which botocore's session and client set-up        3.9 ms           51.7 ms
  ratio to the floor (goal <= 1.15)                    1.156            2.120
task start (v), process cache, median to first answer  296.0 ms         430.4 ms
task start (v), host cache / stock key (goal <= 1.0)   1.102            1.566
=====================================================  ===============  ==================

(iii) makes its cold tokens in one long-lived process (a scheduler, a triggerer, a Celery worker): without the
sharing each one parses botocore's data for both of ``AwsBaseHook``'s sessions again. A fresh task process parses it
once either way and saves the second session's parse and handler registration. The stock key's task start moved
from 159.1 to 209.6 ms between the two runs (the machine's load): the ratios are the steadier numbers.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

#: The botocore releases the sharing was proven on, by minor version (first, last): every MWAA image's pin (1.34.106
#: on Airflow 2.9.2 up to 1.43.56 on 3.3.1) and the development environment's 1.44. botocore bumps the patch number
#: with each (near daily) model release; what is relied on here (a ``Session`` made with ``__new__`` alone, its
#: ``_events`` and ``_register_builtin_handlers``, the emitter's ``_lookup_cache``) is internal and may change with a
#: minor release, and ``botocore.session.get_session`` and ``create_loader`` are replaced process-wide. Under any
#: other botocore nothing is replaced: sessions are made as botocore makes them.
PROVEN_BOTOCORE = ((1, 34), (1, 44))


@functools.cache
def applies() -> bool:
    """Whether the installed botocore is one the sharing was proven on (:data:`PROVEN_BOTOCORE`)."""
    import botocore

    try:
        major, minor = (int(part) for part in str(botocore.__version__).split(".")[:2])
    except ValueError:
        return False
    first, last = PROVEN_BOTOCORE
    return first <= (major, minor) <= last

_shared_loaders: dict[str | None, Any] = {}
_shared_loader_scope = threading.local()
_shared_loader_lock = threading.Lock()


@contextlib.contextmanager
def shared_botocore_data() -> Iterator[None]:
    """Botocore sessions created on this thread inside the block share one process-wide data loader.

    Every new botocore session otherwise parses the STS service model, its endpoint rule set and the endpoints
    and partitions files again (~30-40 ms of JSON per session: each cold token, e.g. every new ``AwsBaseHook``
    session assuming a role). The files are read-only data, so one :class:`botocore.loaders.Loader` (with its
    own cache) per search path serves every session, as the Amazon provider already does for its async sessions.

    Likewise every new botocore session registers botocore's ~130 built-in event handlers one by one (~4 ms of
    event-name aliasing per session; ``AwsBaseHook`` makes two per role it assumes). Sessions that
    ``botocore.session.get_session()`` creates inside the block start instead from a copy of one session's
    registered handlers: the copy botocore itself makes of a session's handlers for each client
    (``HierarchicalEmitter.__copy__``), through ``Session``'s public ``event_hooks`` and
    ``include_builtin_handlers`` arguments, so each session still owns its handlers (what one registers, no other
    sees). Sessions, credentials and their refresh are untouched; other threads and code outside the block see
    botocore as it was. Under a botocore outside :data:`PROVEN_BOTOCORE`, the block changes nothing.
    """
    if not applies():
        yield
        return
    _install_shared_loader()
    _install_shared_handlers()
    previous = getattr(_shared_loader_scope, "active", False)
    _shared_loader_scope.active = True
    try:
        yield
    finally:
        _shared_loader_scope.active = previous


def _install_shared_loader() -> None:
    import botocore.session

    with _shared_loader_lock:
        original = botocore.session.create_loader
        if getattr(original, "_gcp_wif_shared", False):
            return

        def create_loader(search_path_string: str | None = None) -> Any:
            if not getattr(_shared_loader_scope, "active", False):
                return original(search_path_string)
            loader = _shared_loaders.get(search_path_string)
            if loader is None:
                loader = _shared_loaders.setdefault(search_path_string, original(search_path_string))
            return loader

        create_loader._gcp_wif_shared = True  # type: ignore[attr-defined]
        create_loader.__wrapped__ = original  # type: ignore[attr-defined]
        botocore.session.create_loader = create_loader


_handlers_template: list[Any] = []
_handlers_template_lock = threading.Lock()


def _builtin_handlers() -> Any:
    """An event emitter holding exactly botocore's built-in handlers, registered as ``Session.__init__`` does;
    ``None`` when this botocore is not shaped as expected. No session is made for it, so no botocore initializer
    (``botocore.register_initializer``) adds its own handlers here: they run for each real session, once."""
    import botocore.hooks
    import botocore.session

    try:
        emitter = botocore.hooks.HierarchicalEmitter()
        registrar = botocore.session.Session.__new__(botocore.session.Session)
        registrar._events = botocore.hooks.EventAliaser(emitter)
        registrar._register_builtin_handlers(registrar._events)
    except Exception:  # this botocore is shaped otherwise: it registers them itself
        log.debug("gcp_wif: botocore's built-in handlers could not be prepared once", exc_info=True)
        return None
    return emitter


def _install_shared_handlers() -> None:
    import copy

    import botocore.hooks
    import botocore.session

    with _shared_loader_lock:
        original = botocore.session.get_session
        if getattr(original, "_gcp_wif_shared", False):
            return

        def get_session(env_vars: Any = None) -> Any:
            if not getattr(_shared_loader_scope, "active", False):
                return original(env_vars)
            if not _handlers_template:
                with _handlers_template_lock:
                    if not _handlers_template:
                        _handlers_template.append(_builtin_handlers())
            template = _handlers_template[0]
            if template is None:  # a botocore this does not fit: leave it be
                return original(env_vars)
            handlers = copy.copy(template)
            handlers._lookup_cache = {}  # __copy__ shares the template's (empty) cache dict: give it its own
            return botocore.session.Session(env_vars, event_hooks=handlers, include_builtin_handlers=False)

        get_session._gcp_wif_shared = True  # type: ignore[attr-defined]
        get_session.__wrapped__ = original  # type: ignore[attr-defined]
        botocore.session.get_session = get_session
