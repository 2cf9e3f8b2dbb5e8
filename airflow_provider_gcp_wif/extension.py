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
  and gcloud understand without our code (see :mod:`~airflow_provider_gcp_wif.child_credentials`).

Every other connection takes the original code path untouched: the recognition (``integration.attach``) looks
only at extras keys that a ``google_cloud_platform`` connection never has, and then confirms the connection's type.

Activation costs almost nothing: if ``base_google`` is not imported yet, a post-import hook extends it the moment it
is, then removes itself (no boto3, google-auth or googleapiclient import happens here). The extension is guarded:
:func:`contract_problems` checks the installed ``GoogleBaseHook``'s interface first; on a mismatch nothing is wrapped,
one error is logged and only ``gcp_wif`` connections are refused (:func:`unsupported_provider_error`). What the
constructor does is checked by its effect, on every hook it builds, before the hook is bound
(:func:`constructor_problems`): a constructor that no longer leaves ``gcp_conn_id`` and the connection's ``extras``
refuses ``gcp_wif`` connections the same way, and changes nothing for the others. Nothing raises inside the import of
``base_google``. :func:`deactivate` restores the original methods.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import logging
import sys
import threading
import typing
from collections.abc import Generator, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from airflow_provider_gcp_wif.constants import CONN_TYPE
from airflow_provider_gcp_wif.integration import attach, binding_of, looks_like_wif

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.errors import WifConfigError

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
        elif not any(isinstance(finder, PostImportFinder) for finder in sys.meta_path):
            sys.meta_path.insert(0, PostImportFinder())


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
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, PostImportFinder)]


class PostImportFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``base_google`` so that :func:`extend` runs right after the module executes; removes
    itself from ``sys.meta_path`` once it has (every later import finds the module in ``sys.modules``).

    Not ``wrapt.register_post_import_hook`` (same API in every wrapt MWAA pins, 1.16 to 2.x), because it is not
    simpler here: ``import wrapt`` costs 20-40 ms in every Airflow process (Airflow 3 and the Google provider do not
    import it: measured with wrapt 2.5.2 after ``airflow.plugins_manager``), more than this whole activation; its
    finder stays in ``sys.meta_path`` for good and a hook cannot be unregistered, so :func:`deactivate` would need
    an "active" flag checked by a hook that still fires; and these two classes are the whole mechanism.
    """

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
    """What the installed ``GoogleBaseHook`` lacks of the interface :func:`extend` wraps (empty when it can be
    extended). "Compatible" means:

    * ``__init__`` is a function taking ``gcp_conn_id`` and ``impersonation_chain`` by keyword, requiring no other
      argument;
    * ``get_connection`` is callable;
    * ``get_credentials_and_project_id`` is a plain (not async) function of ``self`` alone;
    * ``provide_gcp_credential_file_as_context`` and ``provide_authorized_gcloud`` are ``@contextmanager``
      functions of ``self`` alone.

    Callers pass nothing else to these (the wrappers have the same signatures), so any release that keeps them
    works; one that renames or re-signs one of them is refused instead of half-extended. What the constructor does
    is checked where it runs, on every hook it builds (:func:`constructor_problems`): how its body is written
    (decorated, split into helpers) does not matter.
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
            problems.extend(_signature_problems(name, function))
    return problems


def _signature_problems(name: str, function: Any) -> list[str]:
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
    return problems


def constructor_problems(hook: Any, lookups: Mapping[Any, Any]) -> list[str]:
    """What ``GoogleBaseHook``'s constructor, having just run, left out of what ``integration.attach`` reads (empty
    when the hook can be bound): ``gcp_conn_id`` is set, and ``extras`` reads as a mapping that is the connection's
    extras — when the constructor looked up (``lookups``) a ``gcp_wif`` connection whose extras mark it as one,
    ``extras`` marks it too (else such a hook would quietly take the stock path, with Application Default
    Credentials). No lookup and no I/O: ``extras`` is read as ``attach`` reads it (a property reading the connection
    finds it in ``lookups``)."""
    problems = []
    conn_id = getattr(hook, "gcp_conn_id", _MISSING)
    if conn_id is _MISSING:
        problems.append("GoogleBaseHook.__init__ no longer sets gcp_conn_id")
    try:
        extras = hook.extras
    except Exception as err:  # noqa: BLE001 - whatever it raises, attach could not read it
        return [*problems, f"GoogleBaseHook.extras is not readable after __init__ ({type(err).__name__})"]
    if not isinstance(extras, Mapping):
        return [*problems, f"GoogleBaseHook.extras is a {type(extras).__name__}, not the connection's extras"]
    connection = lookups[conn_id] if conn_id is not _MISSING and conn_id in lookups else None
    if (getattr(connection, "conn_type", None) == CONN_TYPE and not looks_like_wif(extras)
            and looks_like_wif(getattr(connection, "extra_dejson", None))):
        problems.append(f"GoogleBaseHook.extras are not the extras of the connection {conn_id!r}")
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
        binding = binding_of(self)
        if binding is None:
            return original_credentials(self)
        return binding.credentials(), binding.settings.project

    @contextlib.contextmanager
    def provide_gcp_credential_file_as_context(self: Any) -> Generator[str | None, None, None]:
        binding = binding_of(self)
        if binding is None:
            with original_file(self) as path:
                yield path
            return
        from airflow_provider_gcp_wif.child_credentials import credential_file

        with credential_file(binding.settings, binding.credentials) as path:
            yield path

    @contextlib.contextmanager
    def provide_authorized_gcloud(self: Any) -> Generator[None, None, None]:
        binding = binding_of(self)
        if binding is None:
            with original_gcloud(self):
                yield
            return
        from airflow_provider_gcp_wif.child_credentials import authorized_gcloud

        with authorized_gcloud(binding.settings, binding.credentials):
            yield

    wrappers = {
        "__init__": _init_wrapper(hook_class.__init__, _checked_attach),
        "get_credentials_and_project_id": get_credentials_and_project_id,
        "provide_gcp_credential_file_as_context": functools.wraps(original_file)(
            provide_gcp_credential_file_as_context
        ),
        "provide_authorized_gcloud": functools.wraps(original_gcloud)(provide_authorized_gcloud),
    }
    _install(hook_class, wrappers, extended=True)
    log.debug("gcp_wif: GoogleBaseHook extended for gcp_wif connections")


_constructor_reported = False  # whether the error about the constructor was logged (once per process)


def _checked_attach(hook: Any, lookups: Mapping[Any, Any]) -> None:
    """After the stock constructor: bind a ``gcp_wif`` connection (``integration.attach``) if the constructor left
    what that reads (:func:`constructor_problems`); if it did not, fail closed as on a contract mismatch — the
    unsupported-provider error for a ``gcp_wif`` connection, nothing for any other (one error logged)."""
    try:
        problems = constructor_problems(hook, lookups)
    except Exception as err:  # noqa: BLE001 - never break a hook over the check itself
        problems = [f"checking what GoogleBaseHook.__init__ left failed ({type(err).__name__}: {err})"]
    if not problems:
        attach(hook, lookups)
        return
    global _constructor_reported
    if not _constructor_reported:
        _constructor_reported = True
        log.error(
            "gcp_wif: %s %s is not supported (%s); gcp_wif connections will fail with a WifConfigError, "
            "every other Google connection works as before",
            GOOGLE_PROVIDER, google_provider_version(), "; ".join(problems),
        )
    _refuse_wif(hook, lookups, problems)


def _refuse_wif(hook: Any, lookups: Mapping[Any, Any], problems: list[str]) -> None:
    """Raise :func:`unsupported_provider_error` if the hook's constructor used a ``gcp_wif`` connection: one it
    looked up, or the one ``gcp_conn_id`` names when its extras look like one (or cannot be read). Any error of its
    own is swallowed: every other connection behaves as the constructor made it."""
    try:
        seen = dict(lookups)
        conn_id = getattr(hook, "gcp_conn_id", None)
        if conn_id is not None and conn_id not in seen and _extras_may_be_wif(hook):
            seen[conn_id] = hook.get_connection(conn_id)
        wif = [cid for cid, conn in seen.items() if getattr(conn, "conn_type", None) == CONN_TYPE]
    except Exception:
        log.debug("gcp_wif: could not tell whether this hook's connection is gcp_wif", exc_info=True)
        return
    if wif:
        raise unsupported_provider_error(wif[0], problems)


def _extras_may_be_wif(hook: Any) -> bool:
    """Whether the hook's ``extras`` look like a ``gcp_wif`` connection's, or cannot tell (unreadable, or not a
    mapping): then only the connection itself can say."""
    try:
        extras = getattr(hook, "extras", None)
    except Exception:  # noqa: BLE001 - unreadable
        return True
    return looks_like_wif(extras) if extras is None or isinstance(extras, Mapping) else True


def _refuse_wif_connections(hook_class: type[Any], problems: list[str]) -> None:
    """The one patch left when the contract fails: a pass-through ``__init__`` that raises for ``gcp_wif``
    connections only, whatever the constructor's signature."""

    def refuse(hook: Any, lookups: Mapping[Any, Any]) -> None:
        _refuse_wif(hook, lookups, problems)

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
