"""``CloudSecretManagerWifBackend``: Airflow's Google Secret Manager secrets backend, keyless from AWS.

Airflow's stock ``CloudSecretManagerBackend`` authenticates with a key file, a key dict, a credential-config file or
Application Default Credentials — which on MWAA and ECS all come down to a key, or to a credential config whose AWS
source cannot read container credentials. This subclass keeps everything the stock backend does with secrets
(prefixes, separator, names, teams, "not found" handling) and replaces only where its credentials come from:

* the WIF settings are ``backend_kwargs`` with the same names as a ``gcp_wif`` connection's extras
  (``project_number``, ``pool_id``, ``provider_id`` or ``audience`` or ``credential_config``,
  ``impersonation_chain``, ``scope``, ``lifetime_seconds``, ``sts_endpoint``, ``iam_endpoint``, ...), validated by
  :class:`~airflow_provider_gcp_wif.config.WifSettings` (errors name the kwarg, before any request);
* the AWS identity is boto3's default chain (on MWAA: the execution role, through ECS container credentials),
  optionally a named ``aws_profile`` and/or an ``aws_role_arn`` to assume first. Not an Airflow AWS connection:
  a secrets backend is where connections are looked up, so it cannot depend on one.

Two decisions differ from the stock class, on purpose:

* Its ``__init__`` never runs the stock credential lookup: without key settings that lookup is
  ``google.auth.default()``, which probes Google's metadata server (network I/O, seconds of timeouts on AWS) and
  logs a stack trace. The stock attributes are set directly; a contract test checks, per Google provider version,
  that the stock ``__init__`` sets no attribute this one does not.
* The Secret Manager client uses the REST transport (google-cloud-secret-manager speaks gRPC by default). REST
  goes through google-auth's ``AuthorizedSession`` and our shared credentials exactly like every other Google
  call of the provider, works with any HTTPS endpoint (Private Service Connect names, local emulators through
  ``secret_manager_endpoint``) and avoids gRPC's fork pitfalls in Celery workers; the wire protocol is Google's
  documented REST API on the same host.
"""

from __future__ import annotations

import difflib
import hashlib
import os
from functools import cached_property
from typing import Any

from airflow.providers.google.cloud._internal_client.secret_manager_client import _SecretManagerClient
from airflow.providers.google.cloud.secrets.secret_manager import CloudSecretManagerBackend

from airflow_provider_gcp_wif.config import KNOWN_KEYS, WifSettings
from airflow_provider_gcp_wif.endpoints import EndpointRefused, checked_endpoint, parse_allowed_hosts
from airflow_provider_gcp_wif.errors import WifConfigError
from airflow_provider_gcp_wif.excerpts import shown_url

#: The WIF settings a backend takes (a connection's extras, minus the AWS connection it cannot look up).
WIF_KWARGS = tuple(key for key in KNOWN_KEYS if key != "aws_conn_id")
#: Settings of the stock backend that this one takes with the same meaning.
STOCK_KWARGS = ("connections_prefix", "variables_prefix", "config_prefix", "sep", "project_id")
#: The AWS identity and the Secret Manager endpoint.
OWN_KWARGS = ("aws_profile", "aws_role_arn", "secret_manager_endpoint", "gcp_scopes")
KEY_KWARGS = ("gcp_key_path", "gcp_keyfile_dict", "gcp_credential_config_file")
_WHERE = "[secrets] backend_kwargs"


def _fail(kwarg: str, problem: str, fix: str) -> WifConfigError:
    return WifConfigError(kwarg, f"{problem} (in {_WHERE})", fix)


class _RestSecretManagerClient(_SecretManagerClient):
    """The stock client (its ``get_secret`` turns NOT_FOUND into ``None``) over the REST transport."""

    def __init__(self, credentials: Any, api_endpoint: str) -> None:
        super().__init__(credentials=credentials)
        self._api_endpoint = api_endpoint

    @cached_property
    def client(self) -> Any:
        from google.cloud.secretmanager_v1 import SecretManagerServiceClient

        options: dict[str, Any] = {"credentials": self.credentials, "transport": "rest",
                                   "client_options": {"api_endpoint": self._api_endpoint}}
        try:
            from airflow.providers.google.common.consts import CLIENT_INFO

            options["client_info"] = CLIENT_INFO
        except ImportError:  # pragma: no cover - every supported Google provider has it
            pass
        return SecretManagerServiceClient(**options)


class CloudSecretManagerWifBackend(CloudSecretManagerBackend):
    """Google Secret Manager as Airflow's secrets backend, authenticated from AWS through Workload Identity
    Federation. Configure it with ``[secrets] backend`` and ``backend_kwargs`` (on MWAA: the Airflow configuration
    options ``secrets.backend`` and ``secrets.backend_kwargs``), e.g.::

        {"project_id": "my-project", "project_number": "123456789012", "pool_id": "aws-pool",
         "provider_id": "aws-provider", "impersonation_chain": "airflow@my-project.iam.gserviceaccount.com"}

    Args:
        connections_prefix, variables_prefix, config_prefix, sep: as on the stock backend (``null`` turns a kind
            of lookup off).
        project_id: the project whose secrets are read (default: the ``project`` setting).
        aws_profile: an AWS profile of this machine's AWS config to start from (default: boto3's default chain).
        aws_role_arn: an IAM role to assume with that identity first (botocore refreshes it ahead of expiry).
        secret_manager_endpoint: the Secret Manager API endpoint (default ``https://secretmanager.<universe>``);
            held to the same allow-list as ``sts_endpoint``.
        gcp_scopes: the stock backend's name for ``scope``.
        **settings: the ``gcp_wif`` connection extras (``project_number``, ``pool_id``, ``provider_id``,
            ``audience``, ``credential_config``, ``impersonation_chain``, ``project``, ``scope``,
            ``lifetime_seconds``, ``quota_project_id``, ``aws_region``, ``universe_domain``, ``sts_endpoint``,
            ``iam_endpoint``, ``num_retries``).

    Raises:
        WifConfigError: a kwarg is unknown, key-based, or malformed; names it and the fix. No network call
            happens in the constructor.
    """

    def __init__(
        self,
        connections_prefix: str | None = "airflow-connections",
        variables_prefix: str | None = "airflow-variables",
        config_prefix: str | None = "airflow-config",
        sep: str = "-",
        project_id: str | None = None,
        aws_profile: str | None = None,
        aws_role_arn: str | None = None,
        secret_manager_endpoint: str | None = None,
        gcp_scopes: str | None = None,
        **settings: Any,
    ) -> None:
        # The stock __init__ is skipped on purpose (it would run google.auth.default(), see the module docs):
        # its attributes are set here instead.
        super(CloudSecretManagerBackend, self).__init__()
        # The stock backend annotates these `str` yet itself reads None as "this kind of lookup is off".
        self.connections_prefix = connections_prefix  # type: ignore[assignment]
        self.variables_prefix = variables_prefix  # type: ignore[assignment]
        self.config_prefix = config_prefix  # type: ignore[assignment]
        self.sep = sep
        if connections_prefix is not None and not self._is_valid_prefix_and_sep():
            raise _fail("connections_prefix", f"{connections_prefix!r} with sep {sep!r} is not a valid secret name "
                        "prefix.", "use letters, digits, '-' and '_' only.")
        self.settings = self._settings(settings, gcp_scopes)
        project_id = project_id or self.settings.project
        if not project_id:
            raise _fail("project_id", "is required: it names the project whose secrets are read.",
                        "set project_id (or project) to the project ID that holds the secrets.")
        self.project_id = project_id
        self.supplier = _aws_supplier(aws_profile, aws_role_arn, self.settings.aws_region)
        self.secret_manager_endpoint = _endpoint(secret_manager_endpoint, self.settings.universe_domain)

        from airflow_provider_gcp_wif.credentials import get_credentials
        from airflow_provider_gcp_wif.extension import activate

        # Airflow may build its secrets backend before it imports plugins: make sure the tokens minted for it
        # reach the secrets masker (idempotent and cheap, as when the plugin is imported).
        activate()
        self.credentials = get_credentials(self.settings, self.supplier)  # shared; no I/O until first use

    @staticmethod
    def _settings(settings: dict[str, Any], gcp_scopes: str | None) -> WifSettings:
        for key in settings:
            if key in KEY_KWARGS:
                raise _fail(key, "is a service-account key setting of the stock backend; this backend is keyless.",
                            "remove it and give the workload identity settings (project_number, pool_id, "
                            "provider_id, impersonation_chain) instead.")
            if key == "aws_conn_id":
                raise _fail(key, "cannot be used: a secrets backend is where Airflow looks connections up, so it "
                            "cannot read an AWS connection itself.",
                            "remove it; the backend uses boto3's default credential chain (on MWAA the execution "
                            "role), or set aws_profile and/or aws_role_arn.")
            if key not in WIF_KWARGS:
                known = (*STOCK_KWARGS, *OWN_KWARGS, *WIF_KWARGS)
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}?" if close else f"known kwargs: {', '.join(known)}."
                raise _fail(key, "is not a setting of this backend.", hint)
        extras = dict(settings)
        if gcp_scopes and "scope" not in extras:
            extras["scope"] = gcp_scopes
        from airflow_provider_gcp_wif.options import allowed_endpoint_hosts

        try:
            return WifSettings.from_extras(extras, allowed_endpoint_hosts=allowed_endpoint_hosts())
        except WifConfigError as err:
            raise _fail(err.field, err.problem, err.fix) from None

    @property
    def client(self) -> _SecretManagerClient:
        """One REST Secret Manager client per backend (the stock property builds a new client per lookup)."""
        client = self.__dict__.get("_wif_client")
        if client is None:
            client = self.__dict__["_wif_client"] = _RestSecretManagerClient(self.credentials,
                                                                             self.secret_manager_endpoint)
        return client


def _aws_supplier(profile: str | None, role_arn: str | None, region: str | None) -> Any:
    from airflow_provider_gcp_wif.resource_names import is_role_arn
    from airflow_provider_gcp_wif.supplier import Boto3Supplier

    if role_arn is None:
        return Boto3Supplier.default_chain(region=region, profile=profile)
    if not is_role_arn(str(role_arn)):
        raise _fail("aws_role_arn", f"{role_arn!r} is not an IAM role ARN.",
                    "use arn:aws:iam::ACCOUNT_ID:role/ROLE_NAME, or leave it out to use the identity as it is.")
    from airflow_provider_gcp_wif.token_service import assume_role_session

    key_id = os.environ.get("AWS_ACCESS_KEY_ID", "")
    digest = hashlib.sha256(f"{profile}|{key_id}".encode()).hexdigest()[:16]
    base = f"AWS profile {profile!r}" if profile else "the default AWS credential chain"
    return Boto3Supplier(lambda: assume_role_session(role_arn, region=region, profile=profile), region=region,
                         identity_key=f"secrets-backend-role:{role_arn}:{digest}",
                         description=f"role {role_arn} assumed with {base}")


def _endpoint(raw: str | None, universe: str) -> str:
    """The normalised base URL the REST client sends every request (with the access token) to; checked like
    ``sts_endpoint``: the strict grammar, the sending libraries' own reading of the host, then the allow-list."""
    from airflow_provider_gcp_wif.options import allowed_endpoint_hosts

    default = f"https://secretmanager.{universe}"
    if not raw:
        return default
    try:
        base, path = checked_endpoint(str(raw).strip(), allowed=parse_allowed_hosts(allowed_endpoint_hosts()),
                                      universe=universe)
        if path:
            raise EndpointRefused(f"{shown_url(raw)} has a path; give the base URL only", "grammar")
    except EndpointRefused as refused:
        if refused.kind == "grammar":
            raise _fail("secret_manager_endpoint", f"{refused.reason}.",
                        f"use a plain base URL such as {default}.") from None
        if refused.kind == "http":
            raise _fail("secret_manager_endpoint", f"{refused.reason}.", "use https.") from None
        raise _fail("secret_manager_endpoint", f"{refused.reason}; the Google token is a credential and is only "
                    "sent to Google.",
                    f"use {default} or a Private Service Connect name under *.p.{universe}; an Airflow "
                    "administrator can allow other hosts in [gcp_wif] allowed_endpoint_hosts.") from None
    return base


__all__ = ["CloudSecretManagerWifBackend"]
