"""A ``gcp_wif`` connection as a hook sees it: recognised, validated and bound to the shared credentials.

:func:`attach` runs right after ``GoogleBaseHook``'s own constructor (which
:mod:`~airflow_provider_gcp_wif.extension` wraps): when the hook's connection is of type ``gcp_wif`` it stores a
:class:`WifBinding` on the hook — the connection's settings with the operator's overrides, and the AWS identity
source of its AWS connection (:mod:`~airflow_provider_gcp_wif.aws_connection`). Every other connection is left
alone: the recognition looks only at extras keys that a ``google_cloud_platform`` connection never has, and then
confirms the connection's type. Child processes get the binding's identity through
:mod:`~airflow_provider_gcp_wif.child_credentials`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_gcp_wif.aws_connection import aws_connection_supplier
from airflow_provider_gcp_wif.constants import CONN_TYPE, LEGACY_PREFIX
from airflow_provider_gcp_wif.fields import WIF_MARKER_KEYS
from airflow_provider_gcp_wif.options import allowed_endpoint_hosts, host_token_cache

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.supplier import Boto3Supplier


def looks_like_wif(extras: Mapping[str, Any] | None) -> bool:
    """True when the extras carry a key only ``gcp_wif`` connections have (no lookup, no I/O)."""
    if not extras:
        return False
    return any(key in WIF_MARKER_KEYS or key.startswith(LEGACY_PREFIX) for key in extras)


#: Where :func:`attach` keeps a hook's binding: the hook's own ``__dict__`` (not its class, not a property: a stock
#: hook that is not ``gcp_wif`` has none, and copies of a hook object do not share one).
_BINDING = "_gcp_wif"


def binding_of(hook: Any) -> WifBinding | None:
    """The :class:`WifBinding` :func:`attach` gave ``hook``, or ``None`` when its connection is not ``gcp_wif``."""
    binding: WifBinding | None = getattr(hook, "__dict__", {}).get(_BINDING)
    return binding


def attach(hook: Any, lookups: Mapping[Any, Any]) -> None:
    """Bind a hook whose connection is ``gcp_wif``; reuse the connection its constructor looked up (``lookups``)."""
    extras = getattr(hook, "extras", None)
    if not looks_like_wif(extras):
        return
    conn_id = getattr(hook, "gcp_conn_id", None)
    connection = lookups[conn_id] if conn_id in lookups else hook.get_connection(conn_id)
    if getattr(connection, "conn_type", None) != CONN_TYPE:
        return
    hook.__dict__[_BINDING] = WifBinding.for_hook(
        conn_id,
        connection.extra_dejson,
        impersonation_chain=getattr(hook, "impersonation_chain", None),
        quota_project_id=getattr(hook, "quota_project_id", None),
        get_connection=hook.get_connection,
    )


@dataclass
class WifBinding:
    """A ``gcp_wif`` connection as one hook sees it: validated settings (with the operator's overrides) and the
    AWS identity source. Holds no token itself: :meth:`credentials` returns the process-wide shared one (which
    :mod:`~airflow_provider_gcp_wif.child_credentials` gives child processes)."""

    settings: WifSettings
    supplier: Boto3Supplier
    _shared: Any = field(default=None, init=False, repr=False, compare=False)
    _generation: int = field(default=0, init=False, repr=False, compare=False)

    @classmethod
    def for_hook(
        cls,
        conn_id: str | None,
        extras: Mapping[str, Any],
        *,
        impersonation_chain: str | list[str] | tuple[str, ...] | None = None,
        quota_project_id: str | None = None,
        get_connection: Callable[[str], Any] | None = None,
    ) -> WifBinding:
        from airflow_provider_gcp_wif.config import WifSettings

        settings = WifSettings.from_extras(extras, conn_id=conn_id, allowed_endpoint_hosts=allowed_endpoint_hosts())
        overrides: dict[str, Any] = {}
        if impersonation_chain:
            # As on the Google Cloud connection, the operator's chain replaces the connection's.
            overrides["impersonation_chain"] = impersonation_chain
        if quota_project_id:
            overrides["quota_project_id"] = quota_project_id
        if overrides:
            settings = settings.replace(**overrides)
        supplier = aws_connection_supplier(settings.aws_conn_id, settings.aws_region, get_connection=get_connection)
        return cls(settings, supplier)

    def credentials(self) -> Any:
        """The process-wide shared credentials, looked up once per binding (hooks ask for them on every call) and
        again in a forked child, which has its own cache."""
        from airflow_provider_gcp_wif.credentials import fork_generation, get_credentials

        generation = fork_generation()
        if self._shared is None or self._generation != generation:
            self._shared = get_credentials(self.settings, self.supplier, host_cache=host_token_cache())
            self._generation = generation
        return self._shared
