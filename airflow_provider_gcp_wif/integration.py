"""Make every stock Google hook honour ``gcp_wif`` connections.

Stock operators build ``GoogleBaseHook`` subclasses that read the connection's extras and never look at its type.
:func:`activate` extends ``GoogleBaseHook`` itself, narrowly and idempotently, so that a hook whose connection is of
type ``gcp_wif`` gets Workload Identity Federation credentials on every path a stock operator can take:

* ``__init__`` (runs off the triggerer's event loop: ``GoogleBaseAsyncHook.get_sync_hook`` builds the sync hook in
  a thread) recognises a ``gcp_wif`` connection, validates its settings (a bad setting fails here, before any
  request) and prepares the shared credentials — no network I/O;
* ``get_credentials_and_project_id`` returns them (sync hooks, and async hooks through ``_CredentialsToken``, which
  calls it on the event loop: it does no I/O and no connection lookup);
* ``provide_gcp_credential_file_as_context`` / ``provide_authorized_gcloud`` (and through them
  ``GoogleBaseAsyncHook.service_file_as_context``) give child processes an external-account configuration whose AWS
  credentials come from a loopback endpoint of this process (no AWS secret in any environment), which google-auth
  and gcloud understand without our code (see :meth:`WifBinding.credential_file`).

Every other connection takes the original code path untouched: the recognition looks only at extras keys that a
``google_cloud_platform`` connection never has, and then confirms the connection's type.

Activation costs almost nothing: if ``base_google`` is not imported yet, a post-import hook extends it the moment it
is, then removes itself (no boto3, google-auth or googleapiclient import happens here). The extension is guarded:
:func:`contract_problems` checks the installed ``GoogleBaseHook`` first; on a mismatch nothing is wrapped, one error
is logged and only ``gcp_wif`` connections are refused (:func:`unsupported_provider_error`). Nothing raises inside
the import of ``base_google``. :func:`deactivate` restores the original methods.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import typing
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from airflow_provider_gcp_wif.constants import (
    AWS_SUBJECT_TOKEN_TYPE,
    CONFIG_SECTION,
    CONN_TYPE,
    JWT_SUBJECT_TOKEN_TYPE,
    LEGACY_PREFIX,
    REGIONAL_CRED_VERIFICATION_URL,
)
from airflow_provider_gcp_wif.fields import WIF_MARKER_KEYS

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.errors import WifConfigError
    from airflow_provider_gcp_wif.host_cache import HostTokenCache
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

log = logging.getLogger(__name__)

BASE_GOOGLE = "airflow.providers.google.common.hooks.base_google"
_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------------------------
# Activation
# ---------------------------------------------------------------------------------------------------------------

GOOGLE_PROVIDER = "apache-airflow-providers-google"
# The Google provider releases whose GoogleBaseHook this extension was written and tested against (MWAA's oldest
# image pins 10.19.0). A newer release keeps working as long as the contract checked by `contract_problems` holds.
TESTED_GOOGLE_PROVIDERS = ("10.19.0", "22.8.0")
_CONTEXT_MANAGERS = ("provide_gcp_credential_file_as_context", "provide_authorized_gcloud")
_WRAPPED = ("__init__", "get_credentials_and_project_id", *_CONTEXT_MANAGERS)
_MISSING = object()


def activate() -> None:
    """Extend ``GoogleBaseHook`` now if it is imported, else as soon as it is. Idempotent; cheap; never raises
    (a failure is logged: Airflow imports this in every process, and Google operators must keep working)."""
    with _lock:
        _register_masker()
        module = sys.modules.get(BASE_GOOGLE)
        if module is not None and hasattr(module, "GoogleBaseHook"):
            _extend_logged(module)
        elif not any(isinstance(finder, _PostImportFinder) for finder in sys.meta_path):
            sys.meta_path.insert(0, _PostImportFinder())


def deactivate() -> None:
    """Undo :func:`activate`: remove the import hook and put back the exact original ``GoogleBaseHook`` methods.

    Hooks built while active keep their ``gcp_wif`` binding but take the stock code paths from now on."""
    with _lock:
        _remove_finders()
        module = sys.modules.get(BASE_GOOGLE)
        _restore(getattr(module, "GoogleBaseHook", None))


def _restore(hook_class: Any) -> None:
    originals = _originals.pop(hook_class, None) if isinstance(hook_class, type) else None
    if originals is None:
        return
    for name, original in originals.items():
        if original is _MISSING:
            delattr(hook_class, name)
        else:
            setattr(hook_class, name, original)
    with contextlib.suppress(AttributeError):
        delattr(hook_class, "_gcp_wif_extended")


def _remove_finders() -> None:
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _PostImportFinder)]


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``base_google`` so that :func:`extend` runs right after the module executes; removes
    itself from ``sys.meta_path`` once it has (every later import finds the module in ``sys.modules``)."""

    def __init__(self) -> None:
        self._busy = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != BASE_GOOGLE or self._busy:
            return None
        self._busy = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy = False
        if spec is None or spec.loader is None:
            return None
        spec.loader = _ExtendingLoader(spec.loader)
        return spec


class _ExtendingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)  # its errors are the import's own: let them through untouched
        _remove_finders()
        _extend_logged(module)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, ... for tracebacks and tools
        return getattr(self._loader, name)


def _extend_logged(module: ModuleType) -> None:
    """:func:`extend`, but never raising: this runs inside the import of ``base_google`` (or of the plugin). If
    the extension itself fails, whatever it changed is undone and ``gcp_wif`` connections are refused."""
    try:
        extend(module)
    except Exception as err:
        log.exception("gcp_wif: could not extend GoogleBaseHook; gcp_wif connections will not work in this process")
        hook_class = getattr(module, "GoogleBaseHook", None)
        with contextlib.suppress(Exception):
            _restore(hook_class)
            if isinstance(hook_class, type):  # only a class has a constructor to patch (None failed in _install)
                _refuse_wif_connections(hook_class, [f"extending GoogleBaseHook failed ({type(err).__name__}: {err})"])


def _register_masker() -> None:
    from airflow_provider_gcp_wif import masking

    masking.add_listener(_mask_secret)


def _mask_secret(value: str) -> None:
    modules = ("airflow.sdk.log", "airflow.sdk.execution_time.secrets_masker", "airflow.utils.log.secrets_masker")
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        mask = getattr(module, "mask_secret", None)
        if mask is not None:
            mask(value)
            return


# -- the contract: what the extension needs from GoogleBaseHook --------------------------------------------------


def contract_problems(hook_class: Any) -> list[str]:
    """What the installed ``GoogleBaseHook`` lacks of what :func:`extend` wraps and :func:`_attach` reads (empty
    when it can be extended). "Compatible" means:

    * ``__init__`` is a function taking ``gcp_conn_id`` and ``impersonation_chain`` by keyword, requiring no other
      argument, and storing ``gcp_conn_id`` and ``extras`` (read by :func:`_attach`; ``extras`` may instead be a
      property) through ``get_connection``;
    * ``get_connection`` is callable;
    * ``get_credentials_and_project_id`` is a plain (not async) function of ``self`` alone;
    * ``provide_gcp_credential_file_as_context`` and ``provide_authorized_gcloud`` are ``@contextmanager``
      functions of ``self`` alone.

    Callers pass nothing else to these (the wrappers have the same signatures), so any release that keeps them
    works; one that renames or re-signs one of them is refused instead of half-extended.
    """
    if not isinstance(hook_class, type):
        return ["GoogleBaseHook is not a class"]
    problems: list[str] = []
    if not callable(getattr(hook_class, "get_connection", None)):
        problems.append("GoogleBaseHook.get_connection is missing")
    for name in _WRAPPED:
        function = getattr(hook_class, name, None)
        if function is None:
            problems.append(f"GoogleBaseHook.{name} is missing")
        elif not inspect.isfunction(function):
            problems.append(f"GoogleBaseHook.{name} is a {type(function).__name__}, not a method")
        else:
            problems.extend(_signature_problems(hook_class, name, function))
    return problems


def _signature_problems(hook_class: type, name: str, function: Any) -> list[str]:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError) as err:
        return [f"GoogleBaseHook.{name} has no readable signature ({err})"]
    where = f"GoogleBaseHook.{name}{inspect.signature(function)}"
    if not parameters or parameters[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                    inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return [f"{where} takes no self"]
    rest = parameters[1:]
    if name != "__init__":
        problems = [f"{where} takes arguments besides self"] if rest else []
        if inspect.iscoroutinefunction(function):
            problems.append(f"{where} is async")
        if name in _CONTEXT_MANAGERS and not inspect.isgeneratorfunction(getattr(function, "__wrapped__", None)):
            problems.append(f"{where} is not a @contextmanager")
        return problems
    problems = []
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    by_name = {parameter.name: parameter for parameter in rest}
    for wanted in ("gcp_conn_id", "impersonation_chain"):
        if wanted not in by_name or by_name[wanted].kind not in keyword:
            problems.append(f"{where} takes no {wanted} keyword")
    required = [p.name for p in rest if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        problems.append(f"{where} requires {', '.join(required)}")
    names = set(function.__code__.co_names)
    extras = inspect.getattr_static(hook_class, "extras", None)
    extras_property = isinstance(extras, (property, functools.cached_property))
    if not {"gcp_conn_id", "get_connection"} <= names or not ("extras" in names or extras_property):
        problems.append(f"GoogleBaseHook.{name} no longer sets gcp_conn_id and extras from get_connection")
    return problems


def google_provider_version() -> str:
    try:
        from importlib.metadata import version

        return version(GOOGLE_PROVIDER)
    except Exception:  # noqa: BLE001 - a vendored or unusual install: say so rather than fail
        return "(unknown version)"


def unsupported_provider_error(conn_id: str | None, problems: list[str]) -> WifConfigError:
    """The error a ``gcp_wif`` connection gets when ``GoogleBaseHook`` could not be extended."""
    from airflow_provider_gcp_wif.errors import WifConfigError

    oldest, newest = TESTED_GOOGLE_PROVIDERS
    return WifConfigError(
        "conn_type",
        f"{GOOGLE_PROVIDER} {google_provider_version()} is not supported by airflow-provider-gcp-wif: "
        f"{'; '.join(problems)}. Its GoogleBaseHook cannot be extended, and stock Google hooks would otherwise "
        "use Application Default Credentials for this connection.",
        f"install a supported {GOOGLE_PROVIDER} ({oldest} or later with this GoogleBaseHook interface; tested "
        f"{oldest} to {newest}), e.g. `{GOOGLE_PROVIDER}=={newest}`, or an airflow-provider-gcp-wif release that "
        "supports the new one.",
        conn_id=conn_id,
    )


# -- the extension -----------------------------------------------------------------------------------------------

class _ExtensibleHook(typing.Protocol):
    """What :func:`contract_problems` guarantees of ``GoogleBaseHook``, for the type checker."""

    def get_credentials_and_project_id(self) -> tuple[Any, str | None]: ...

    def provide_gcp_credential_file_as_context(self) -> contextlib.AbstractContextManager[str | None]: ...

    def provide_authorized_gcloud(self) -> contextlib.AbstractContextManager[None]: ...


# GoogleBaseHook → {method name: what its class __dict__ held before (or _MISSING)}, for deactivate().
_originals: dict[type, dict[str, Any]] = {}


def extend(module: ModuleType) -> None:
    """Wrap the four ``GoogleBaseHook`` methods (once per class, whatever calls this) — if the installed class
    honours :func:`contract_problems`. If it does not, log one error naming the Google provider version, leave the
    four methods as they are, and only make ``gcp_wif`` connections fail with a :class:`WifConfigError` (otherwise
    stock hooks would silently fall back to Application Default Credentials for them)."""
    hook_class = getattr(module, "GoogleBaseHook", None)
    if isinstance(hook_class, type) and "_gcp_wif_extended" in hook_class.__dict__:
        return
    problems = contract_problems(hook_class)
    if problems:
        log.error(
            "gcp_wif: %s %s is not supported (%s); gcp_wif connections will fail with a WifConfigError, "
            "every other Google connection works as before",
            GOOGLE_PROVIDER, google_provider_version(), "; ".join(problems),
        )
        if isinstance(hook_class, type):
            _refuse_wif_connections(hook_class, problems)
        return
    assert isinstance(hook_class, type)  # for mypy: contract_problems checked it
    hook_class = typing.cast("type[_ExtensibleHook]", hook_class)
    original_credentials = hook_class.get_credentials_and_project_id
    original_file = hook_class.provide_gcp_credential_file_as_context
    original_gcloud = hook_class.provide_authorized_gcloud

    @functools.wraps(original_credentials)
    def get_credentials_and_project_id(self: Any) -> tuple[Any, str | None]:
        binding: WifBinding | None = self.__dict__.get("_gcp_wif")
        if binding is None:
            return original_credentials(self)
        return binding.credentials(), binding.settings.project

    @contextlib.contextmanager
    def provide_gcp_credential_file_as_context(self: Any) -> Generator[str | None, None, None]:
        binding: WifBinding | None = self.__dict__.get("_gcp_wif")
        if binding is None:
            with original_file(self) as path:
                yield path
            return
        with binding.credential_file() as path:
            yield path

    @contextlib.contextmanager
    def provide_authorized_gcloud(self: Any) -> Generator[None, None, None]:
        binding: WifBinding | None = self.__dict__.get("_gcp_wif")
        if binding is None:
            with original_gcloud(self):
                yield
            return
        with binding.authorized_gcloud():
            yield

    wrappers = {
        "__init__": _init_wrapper(hook_class.__init__, _attach),
        "get_credentials_and_project_id": get_credentials_and_project_id,
        "provide_gcp_credential_file_as_context": functools.wraps(original_file)(
            provide_gcp_credential_file_as_context
        ),
        "provide_authorized_gcloud": functools.wraps(original_gcloud)(provide_authorized_gcloud),
    }
    _install(hook_class, wrappers, extended=True)
    log.debug("gcp_wif: GoogleBaseHook extended for gcp_wif connections")


def _refuse_wif_connections(hook_class: type[Any], problems: list[str]) -> None:
    """The one patch left when the contract fails: a pass-through ``__init__`` that raises for ``gcp_wif``
    connections only, whatever the constructor's signature. Any error of its own is swallowed."""

    def refuse(hook: Any, lookups: Mapping[Any, Any]) -> None:
        try:
            seen = dict(lookups)
            conn_id = getattr(hook, "gcp_conn_id", None)
            if conn_id is not None and conn_id not in seen and looks_like_wif(getattr(hook, "extras", None)):
                seen[conn_id] = hook.get_connection(conn_id)
            wif = [cid for cid, conn in seen.items() if getattr(conn, "conn_type", None) == CONN_TYPE]
        except Exception:
            log.debug("gcp_wif: could not tell whether this hook's connection is gcp_wif", exc_info=True)
            return
        if wif:
            raise unsupported_provider_error(wif[0], problems)

    _install(hook_class, {"__init__": _init_wrapper(hook_class.__init__, refuse)}, extended=False)


def _install(hook_class: type, wrappers: Mapping[str, Any], *, extended: bool) -> None:
    _originals[hook_class] = {name: hook_class.__dict__.get(name, _MISSING) for name in wrappers}
    for name, wrapper in wrappers.items():
        setattr(hook_class, name, wrapper)
    hook_class._gcp_wif_extended = extended  # type: ignore[attr-defined]


def _init_wrapper(original_init: Any, after: Any) -> Any:
    """``__init__`` then ``after(hook, lookups)``, with the connections the constructor looked up remembered, so
    that recognising a ``gcp_wif`` connection costs no second secrets-backend lookup."""

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        instance = getattr(self, "__dict__", None)
        if instance is None or "get_connection" in instance:  # no room for the memo: plain construction
            original_init(self, *args, **kwargs)
            after(self, {})
            return
        lookup = self.get_connection
        lookups: dict[Any, Any] = {}

        @functools.wraps(lookup)
        def get_connection(conn_id: str) -> Any:
            if conn_id not in lookups:
                lookups[conn_id] = lookup(conn_id)
            return lookups[conn_id]

        instance["get_connection"] = get_connection
        try:
            original_init(self, *args, **kwargs)
            after(self, lookups)
        finally:
            instance.pop("get_connection", None)

    return __init__


# ---------------------------------------------------------------------------------------------------------------
# A hook bound to a gcp_wif connection
# ---------------------------------------------------------------------------------------------------------------


def looks_like_wif(extras: Mapping[str, Any] | None) -> bool:
    """True when the extras carry a key only ``gcp_wif`` connections have (no lookup, no I/O)."""
    if not extras:
        return False
    return any(key in WIF_MARKER_KEYS or key.startswith(LEGACY_PREFIX) for key in extras)


def _attach(hook: Any, lookups: Mapping[Any, Any]) -> None:
    """Bind a hook whose connection is ``gcp_wif``; reuse the connection its constructor looked up (``lookups``)."""
    extras = getattr(hook, "extras", None)
    if not looks_like_wif(extras):
        return
    conn_id = getattr(hook, "gcp_conn_id", None)
    connection = lookups[conn_id] if conn_id in lookups else hook.get_connection(conn_id)
    if getattr(connection, "conn_type", None) != CONN_TYPE:
        return
    hook.__dict__["_gcp_wif"] = WifBinding.for_hook(
        conn_id,
        connection.extra_dejson,
        impersonation_chain=getattr(hook, "impersonation_chain", None),
        quota_project_id=getattr(hook, "quota_project_id", None),
        get_connection=hook.get_connection,
    )


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


@dataclass
class WifBinding:
    """A ``gcp_wif`` connection as one hook sees it: validated settings (with the operator's overrides) and the
    AWS identity source. Holds no token itself: :meth:`credentials` returns the process-wide shared one."""

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

    # -- child processes -------------------------------------------------------------------------------------

    def external_account_config(self, credentials_url: str | None = None) -> dict[str, Any]:
        """An ADC file that google-auth and gcloud read on their own: the exchange, with AWS credentials from
        ``credentials_url`` (google-auth's ``aws1`` source asks it in the EC2 metadata format, see
        :meth:`~airflow_provider_gcp_wif.supplier.Boto3Supplier.credential_endpoint`), or from the environment's
        ``AWS_ACCESS_KEY_ID`` & co. without it."""
        s = self.settings
        credential_source: dict[str, Any] = {
            "environment_id": "aws1",
            "regional_cred_verification_url": REGIONAL_CRED_VERIFICATION_URL,
        }
        if credentials_url:
            credential_source["url"] = credentials_url
        subject_token_type = AWS_SUBJECT_TOKEN_TYPE
        if s.federation == "jwt":
            # federation: jwt — the child reads the AWS JWT from the loopback endpoint (identity_pool, url source).
            credential_source = {"url": credentials_url or "", "format": {"type": "json",
                                                                          "subject_token_field_name": "token"}}
            subject_token_type = JWT_SUBJECT_TOKEN_TYPE
        external: dict[str, Any] = {
            "type": "external_account",
            "audience": s.audience,
            "subject_token_type": subject_token_type,
            "token_url": s.sts_endpoint,
            "credential_source": credential_source,
            "universe_domain": s.universe_domain,
        }
        if s.quota_project_id:
            external["quota_project_id"] = s.quota_project_id
        if not s.service_account:
            return external
        if s.delegates:
            from airflow_provider_gcp_wif.errors import WifConfigError

            # google-auth and gcloud read delegates only from impersonated_service_account files, whose source
            # cannot be an external account: a child process cannot be given a chain.
            raise WifConfigError(
                "impersonation_chain",
                f"the chain {', '.join(s.impersonation_chain)} has delegates, which Google's credential files "
                "cannot carry to a child process (Dataflow/Beam runners, gcloud).",
                f"for such tasks, bind the federated identity to {s.service_account} directly "
                "(roles/iam.workloadIdentityUser) and set impersonation_chain to that account alone.",
                conn_id=s.conn_id,
            )
        external["service_account_impersonation_url"] = s.impersonation_url(s.service_account)
        external["service_account_impersonation"] = {"token_lifetime_seconds": s.lifetime_seconds}
        return external

    @contextlib.contextmanager
    def credential_file(self) -> Generator[str, None, None]:
        """Give child processes this connection's identity for the duration: an ADC file (0600, in a private 0700
        directory) named by ``GOOGLE_APPLICATION_CREDENTIALS``, whose AWS credentials come from a loopback
        endpoint of this process; both are gone afterwards.

        Stock callers (Beam/Dataflow runners, gcloud, Dataproc on GKE) spawn their children with this process's
        environment, so the file's path has to be in ``os.environ`` (the stock Google connection does the same).
        What must not be there is an AWS secret: ``os.environ`` belongs to every thread, every later child and
        every later boto3 default-chain session of the process. So:

        * no AWS secret enters ``os.environ``: the child's ``credential_source`` reads them from
          :meth:`~airflow_provider_gcp_wif.supplier.Boto3Supplier.credential_endpoint` (loopback, random
          capability in the URL, open only while the context is), which also keeps a long child working across
          the refresh of assumed-role credentials. Any ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
          ``AWS_SESSION_TOKEN`` the process has are hidden from ``os.environ`` for the duration, because google-auth
          reads those before its ``url`` and the child would sign with the wrong identity;
        * the remaining, non-secret variables (the file's path, region, project, gcloud's config directory) are set
          by :func:`_patched_environ`: contexts of different threads run one after another (a per-process
          re-entrant lock), so a child sees its own context's values only, and afterwards ``os.environ`` is
          exactly what it was (variables that were absent are absent again). The price: in one process, a thread
          opening a context waits while another thread's is open; processes (one task each) are not affected.
          ``service_file_as_context`` enters on the event loop's thread: coroutines of one loop re-enter the lock
          (their exits restore exactly, in any order) but share the one environment, as stock code does.

        With ``federation: jwt`` the file is an ``identity_pool`` one instead: its ``url`` source (``json`` format,
        field ``token``) is the same kind of loopback endpoint, serving the current AWS JWT (the shared, cached one);
        no AWS credential is served at all.

        Alternatives weighed: a ``file`` credential source would put the secrets on disk; an ``executable`` source
        returns only OIDC/SAML subject tokens (not a signed AWS request) and needs
        ``GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`` in the child's environment; per-child environments are
        impossible because stock callers spawn the children.
        """
        self.external_account_config()  # fails on a delegate chain before anything is started
        # The process-wide credentials' AWS identity source (the hooks of one connection share it, and with it one
        # AWS session and one cached JWT), not this hook's own: no AssumeRole or JWT per hook and context.
        supplier = self.credentials().supplier
        region = supplier.get_aws_region(None, None)
        supplier.get_aws_security_credentials(None, None)  # an AWS failure is the parent's error, named
        jwt = self._web_identity_token()
        if jwt is not None:
            jwt()  # likewise GetWebIdentityToken's (feature disabled, permission, botocore too old)
        directory = tempfile.mkdtemp(prefix="gcp-wif-")
        path = os.path.join(directory, "external-account.json")
        owner = os.getpid()
        try:
            with supplier.credential_endpoint(self._web_identity_token()) as credentials_url:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    json.dump(self.external_account_config(credentials_url), handle)
                environment: dict[str, str | None] = {
                    "GOOGLE_APPLICATION_CREDENTIALS": path,
                    "AWS_ACCESS_KEY_ID": None,
                    "AWS_SECRET_ACCESS_KEY": None,
                    "AWS_SESSION_TOKEN": None,
                    "AWS_REGION": region,
                    "AWS_DEFAULT_REGION": region,
                    "CLOUDSDK_CORE_PROJECT": self.settings.project,
                    "GOOGLE_CLOUD_PROJECT": self.settings.project,
                    # A child's stock google-auth would log its subject token, the endpoint's AWS credentials and
                    # the tokens it gets, unredacted (masking.redact_google_auth_logs works in this process only).
                    "GOOGLE_SDK_PYTHON_LOGGING_SCOPE": None,
                }
                if any(os.environ.get(name) for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
                    # The endpoint is on loopback: a proxy could not reach it (and must not see its capability).
                    for name in ("NO_PROXY", "no_proxy"):
                        environment[name] = ",".join(filter(None, [os.environ.get(name), "127.0.0.1"]))
                with _patched_environ(environment):
                    yield path
        finally:
            if os.getpid() == owner:  # a forked child leaving the context must not remove the parent's file
                shutil.rmtree(directory, ignore_errors=True)

    def _web_identity_token(self) -> Callable[[], str] | None:
        """``federation: jwt``: what the loopback endpoint serves the child (the shared, cached JWT supplier)."""
        if self.settings.federation != "jwt":
            return None
        from airflow_provider_gcp_wif.chain import web_identity_token_supplier

        jwt = web_identity_token_supplier(self.settings, self.credentials().supplier)
        return lambda: jwt.get_subject_token(None, None)

    @contextlib.contextmanager
    def authorized_gcloud(self) -> Generator[None, None, None]:
        """A private gcloud configuration logged in with the external-account file (``gcloud auth login
        --cred-file``, which gcloud supports for workload identity federation)."""
        with (
            self.credential_file() as path,
            tempfile.TemporaryDirectory(prefix="gcp-wif-gcloud-") as config_dir,
            _patched_environ({"CLOUDSDK_CONFIG": config_dir}),
        ):
            subprocess.check_output(["gcloud", "auth", "login", f"--cred-file={path}", "--quiet"])
            if self.settings.project:
                subprocess.check_output(["gcloud", "config", "set", "core/project", self.settings.project])
            yield


# The environment overlays of open child-process contexts (see WifBinding.credential_file): one lock per process,
# the values each variable had before the first open overlay set it, and the open overlays in the order they opened.
_environ_lock = threading.RLock()
_environ_before: dict[str, str | None] = {}
_environ_overlays: list[dict[str, str | None]] = []
_overlay_threads: dict[int, int] = {}  # id(overlay) -> the thread that opened it


@contextlib.contextmanager
def _patched_environ(values: Mapping[str, str | None]) -> Generator[None, None, None]:
    """Set (or, for ``None``, unset) variables for the duration; afterwards each is exactly what it was before.

    Holds a per-process re-entrant lock for the duration, so overlays of different threads never overlap. Within
    one thread (nested contexts, or coroutines of one event loop that close them in any order), every variable is
    recomputed on exit from the value it had before the first overlay and the overlays still open, so an
    out-of-order exit restores exactly too.
    """
    overlay = dict(values)
    with _environ_lock:
        for key in overlay:
            _environ_before.setdefault(key, os.environ.get(key))
        _environ_overlays.append(overlay)
        _overlay_threads[id(overlay)] = threading.get_ident()
        try:
            for key, value in overlay.items():
                _set_env(key, value)
            yield
        finally:
            _close_overlays([overlay])


def _close_overlays(closing: list[dict[str, str | None]]) -> None:
    """Drop ``closing`` from the open overlays; their variables get the values of the overlays still open."""
    _environ_overlays[:] = [open_overlay for open_overlay in _environ_overlays
                            if not any(open_overlay is gone for gone in closing)]
    for overlay in closing:
        _overlay_threads.pop(id(overlay), None)
        for key in overlay:
            value = _environ_before.get(key)
            for open_overlay in _environ_overlays:
                value = open_overlay.get(key, value)
            _set_env(key, value)
    if not _environ_overlays:
        _environ_before.clear()


def _environ_after_fork_in_child() -> None:
    """Only the forking thread lives on in a child: overlays other threads had open would never be closed (their
    variables, a credential file about to be deleted, would stay for the child's life) and the lock they held would
    never be released. They are closed here; the forking thread's own overlays (and its hold of the lock) stay."""
    global _environ_lock
    me = threading.get_ident()
    orphaned = [overlay for overlay in _environ_overlays if _overlay_threads.get(id(overlay)) != me]
    if orphaned:
        _close_overlays(orphaned)
    if not _environ_overlays:
        _environ_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_environ_after_fork_in_child)


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
