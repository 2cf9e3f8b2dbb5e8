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
  ``GoogleBaseAsyncHook.service_file_as_context``) give child processes an external-account configuration plus the
  current AWS session credentials in their environment, which google-auth and gcloud understand without our code.

Every other connection takes the original code path untouched: the recognition looks only at extras keys that a
``google_cloud_platform`` connection never has, and then confirms the connection's type.

Activation costs almost nothing: if ``base_google`` is not imported yet, a post-import hook extends it the moment it
is (no boto3, google-auth or googleapiclient import happens here).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.config import WifSettings
    from airflow_provider_gcp_wif.host_cache import HostTokenCache
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

log = logging.getLogger(__name__)

BASE_GOOGLE = "airflow.providers.google.common.hooks.base_google"
CONN_TYPE = "gcp_wif"
_WIF_KEYS = frozenset({"project_number", "pool_id", "provider_id", "audience", "credential_config", "aws_conn_id"})
_lock = threading.Lock()


# ---------------------------------------------------------------------------------------------------------------
# Activation
# ---------------------------------------------------------------------------------------------------------------


def activate() -> None:
    """Extend ``GoogleBaseHook`` now if it is imported, else as soon as it is. Idempotent; cheap."""
    with _lock:
        _register_masker()
        module = sys.modules.get(BASE_GOOGLE)
        if module is not None and hasattr(module, "GoogleBaseHook"):
            extend(module)
        elif not any(isinstance(finder, _PostImportFinder) for finder in sys.meta_path):
            sys.meta_path.insert(0, _PostImportFinder())


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of ``base_google`` so that :func:`extend` runs right after the module executes."""

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
        self._loader.exec_module(module)
        extend(module)

    def __getattr__(self, name: str) -> Any:  # get_source, is_package, ... for tracebacks and tools
        return getattr(self._loader, name)


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


def extend(module: ModuleType) -> None:
    """Wrap the four ``GoogleBaseHook`` methods (once per class, whatever calls this)."""
    hook_class = module.GoogleBaseHook
    if hook_class.__dict__.get("_gcp_wif_extended"):
        return
    original_init = hook_class.__init__
    original_credentials = hook_class.get_credentials_and_project_id
    original_file = hook_class.provide_gcp_credential_file_as_context
    original_gcloud = hook_class.provide_authorized_gcloud

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        _attach(self)

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

    for name, wrapper, original in (
        ("__init__", __init__, original_init),
        ("get_credentials_and_project_id", get_credentials_and_project_id, original_credentials),
        ("provide_gcp_credential_file_as_context", provide_gcp_credential_file_as_context, original_file),
        ("provide_authorized_gcloud", provide_authorized_gcloud, original_gcloud),
    ):
        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        wrapper.__doc__ = getattr(original, "__doc__", None)
        wrapper.__name__ = name
        wrapper.__qualname__ = f"GoogleBaseHook.{name}"
        setattr(hook_class, name, wrapper)
    hook_class._gcp_wif_extended = True
    log.debug("gcp_wif: GoogleBaseHook extended for gcp_wif connections")


# ---------------------------------------------------------------------------------------------------------------
# A hook bound to a gcp_wif connection
# ---------------------------------------------------------------------------------------------------------------


def looks_like_wif(extras: Mapping[str, Any] | None) -> bool:
    """True when the extras carry a key only ``gcp_wif`` connections have (no lookup, no I/O)."""
    if not extras:
        return False
    return any(key in _WIF_KEYS or key.startswith("extra__gcp_wif__") for key in extras)


def _attach(hook: Any) -> None:
    extras = getattr(hook, "extras", None)
    if not looks_like_wif(extras):
        return
    conn_id = getattr(hook, "gcp_conn_id", None)
    connection = hook.get_connection(conn_id)
    if getattr(connection, "conn_type", None) != CONN_TYPE:
        return
    hook.__dict__["_gcp_wif"] = WifBinding.for_hook(
        conn_id,
        connection.extra_dejson,
        impersonation_chain=getattr(hook, "impersonation_chain", None),
        quota_project_id=getattr(hook, "quota_project_id", None),
    )


def allowed_endpoint_hosts() -> str:
    """``[gcp_wif] allowed_endpoint_hosts`` (also ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS``)."""
    try:
        from airflow.configuration import conf

        return str(conf.get("gcp_wif", "allowed_endpoint_hosts", fallback="") or "")
    except Exception:  # noqa: BLE001 - outside a configured Airflow: the environment variable alone
        return os.environ.get("AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS", "")


def _deployment_option(name: str) -> str:
    """``[gcp_wif] <name>`` from the Airflow configuration (also ``AIRFLOW__GCP_WIF__<NAME>``)."""
    try:
        from airflow.configuration import conf

        return str(conf.get("gcp_wif", name, fallback="") or "")
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


def aws_connection_supplier(aws_conn_id: str, region: str | None) -> Boto3Supplier:
    """A supplier over the Amazon provider's ``AwsBaseHook`` session for ``aws_conn_id`` (created on first use, so
    the connection lookup happens at refresh time, off the event loop)."""
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    holder: dict[str, Any] = {}

    def aws_hook() -> Any:
        if "hook" not in holder:
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            holder["hook"] = AwsBaseHook(aws_conn_id=aws_conn_id, client_type="sts")
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
        identity_key=f"aws-conn:{aws_conn_id}",
        description=f"AWS connection {aws_conn_id!r}",
        sts_client_factory=sts_client,
    )


@dataclass
class WifBinding:
    """A ``gcp_wif`` connection as one hook sees it: validated settings (with the operator's overrides) and the
    AWS identity source. Holds no token itself: :meth:`credentials` returns the process-wide shared one."""

    settings: WifSettings
    supplier: Boto3Supplier
    _shared: Any = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def for_hook(
        cls,
        conn_id: str | None,
        extras: Mapping[str, Any],
        *,
        impersonation_chain: str | list[str] | tuple[str, ...] | None = None,
        quota_project_id: str | None = None,
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
        return cls(settings, aws_connection_supplier(settings.aws_conn_id, settings.aws_region))

    def credentials(self) -> Any:
        """The process-wide shared credentials, looked up once per binding (hooks ask for them on every call)."""
        from airflow_provider_gcp_wif.credentials import get_credentials

        if self._shared is None:
            self._shared = get_credentials(self.settings, self.supplier, host_cache=host_token_cache())
        return self._shared

    # -- child processes -------------------------------------------------------------------------------------

    def external_account_config(self) -> dict[str, Any]:
        """An ADC file that google-auth and gcloud read on their own: the exchange with AWS credentials from the
        environment (``credential_source`` ``aws1`` reads ``AWS_ACCESS_KEY_ID`` & co. before any metadata URL)."""
        s = self.settings
        external: dict[str, Any] = {
            "type": "external_account",
            "audience": s.audience,
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": s.sts_endpoint,
            "credential_source": {
                "environment_id": "aws1",
                "regional_cred_verification_url": "https://sts.{region}.amazonaws.com"
                "?Action=GetCallerIdentity&Version=2011-06-15",
            },
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
        """Write the ADC file (0600, in a private 0700 directory), export it and the current AWS credentials to the
        environment for the duration, then remove both."""
        config = self.external_account_config()
        region = self.supplier.get_aws_region(None, None)
        aws = self.supplier.get_aws_security_credentials(None, None)
        directory = tempfile.mkdtemp(prefix="gcp-wif-")
        path = os.path.join(directory, "external-account.json")
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                json.dump(config, handle)
            environment = {
                "GOOGLE_APPLICATION_CREDENTIALS": path,
                "AWS_ACCESS_KEY_ID": aws.access_key_id,
                "AWS_SECRET_ACCESS_KEY": aws.secret_access_key,
                "AWS_SESSION_TOKEN": aws.session_token,
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "CLOUDSDK_CORE_PROJECT": self.settings.project,
                "GOOGLE_CLOUD_PROJECT": self.settings.project,
            }
            with _patched_environ(environment):
                yield path
        finally:
            shutil.rmtree(directory, ignore_errors=True)

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


@contextlib.contextmanager
def _patched_environ(values: Mapping[str, str | None]) -> Generator[None, None, None]:
    """Set (or, for ``None``, unset) variables for the duration; restore the previous values after."""
    previous = {key: os.environ.get(key) for key in values}
    try:
        for key, value in values.items():
            _set_env(key, value)
        yield
    finally:
        for key, value in previous.items():
            _set_env(key, value)


def _set_env(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
