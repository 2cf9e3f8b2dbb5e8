"""The AWS identity of a ``gcp_wif`` connection: its Airflow AWS connection, as a supplier and as a digest.

The AWS connection is read once, when a hook binds the ``gcp_wif`` connection, and identifies the shared
credentials by its content (:func:`aws_connection_digest`), so that a changed AWS connection gets credentials for
the new identity in a long-lived process too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

log = logging.getLogger(__name__)


def aws_connection_supplier(
    aws_conn_id: str, region: str | None, *, get_connection: Callable[[str], Any] | None = None
) -> Boto3Supplier:
    """A supplier over the Amazon provider's ``AwsBaseHook`` session for ``aws_conn_id``.

    The AWS connection is read here, once (this runs in the hook's ``__init__``, off the triggerer's event loop;
    ``get_connection`` is the hook's own lookup, by default Airflow's ``BaseHook.get_connection``), and its
    content goes into the supplier's ``identity_key`` as a digest (:func:`aws_connection_digest`): shared
    credentials are keyed by what the connection *is*, not by its name, so the next hook built after the
    connection changed (a key rotated, a role changed) gets credentials for the new identity, in a long-lived
    process (the triggerer) too. The boto3 session is created on first use, at refresh time, from exactly the
    connection that was digested (no second lookup that could see a newer version)."""
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    connection = _read_aws_connection(aws_conn_id, get_connection)
    holder: dict[str, Any] = {}

    def aws_hook() -> Any:
        if "hook" not in holder:
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            hook = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sts")
            if connection is not None:
                # AwsBaseHook.conn_config reads its connection through self.get_connection (8.x to 9.x).
                lookup = hook.get_connection

                def pinned(conn_id: str) -> Any:
                    return connection if conn_id == aws_conn_id else lookup(conn_id)

                hook.get_connection = pinned  # type: ignore[method-assign]  # this hook instance only
            holder["hook"] = hook
        return holder["hook"]

    def session() -> Any:
        hook = aws_hook()
        # region_name reads the connection; conn_region_name would build a whole STS client (~0.4 s) to say it.
        return hook.get_session(region_name=region or hook.region_name)

    def sts_client(_session: Any, client_region: str) -> Any:
        return aws_hook().get_client_type(region_name=client_region)

    return Boto3Supplier(
        session,
        region=region,
        identity_key=f"aws-conn:{aws_conn_id}:{aws_connection_digest(connection)}",
        description=f"AWS connection {aws_conn_id!r}",
        sts_client_factory=sts_client,
    )


def _read_aws_connection(aws_conn_id: str, get_connection: Callable[[str], Any] | None) -> Any:
    """The AWS connection, or ``None`` when it does not exist (``AwsBaseHook`` then falls back to boto3's default
    chain, as it always did)."""
    if get_connection is None:
        try:
            from airflow.sdk import BaseHook
        except ImportError:  # Airflow 2
            # mypy reads Airflow 3, whose airflow.hooks.base only names BaseHook through a deprecation shim
            from airflow.hooks.base import BaseHook  # type: ignore[attr-defined, no-redef]
        get_connection = BaseHook.get_connection
    try:
        return get_connection(aws_conn_id)
    except Exception as err:  # noqa: BLE001 - AirflowNotFoundException's class differs between Airflow 2 and 3
        # Not found, or not readable now: AwsBaseHook looks it up itself at refresh time and falls back or fails
        # there, with the error named as an AWS-credentials step (as before).
        log.debug("gcp_wif: AWS connection %r not read at hook creation: %s", aws_conn_id, type(err).__name__)
        return None


def aws_connection_digest(connection: Any) -> str:
    """A SHA-256 digest of everything in an AWS connection that can change the identity it gives (type, host,
    schema, login, password, port, extra), or ``"absent"``.

    Plain SHA-256 (not salted per process), so that the same connection yields the same key in every process of
    the host (the opt-in host-wide token cache shares by key). It is safe to keep: the digest reveals nothing that
    its reader could not read directly — it lives in this process's memory (and, hashed again, in a 0700
    directory of the same user), and whoever can read either is the OS user that reads the connection itself; a
    connection with keys has its secret access key (~240 random bits) inside the digested content, so no guess of
    the content can be checked against the digest without that key. The secret itself is never kept in clear."""
    if connection is None:
        return "absent"
    content = {name: getattr(connection, name, None) for name in
               ("conn_type", "host", "schema", "login", "password", "port", "extra")}
    payload = json.dumps(content, sort_keys=True, default=str).encode()
    return hashlib.sha256(b"gcp-wif aws connection\0" + payload).hexdigest()[:32]
