"""``TokenService``: the seed package's API (``scalesec_gcp_workload_identity.main.TokenService``), kept so that its
users switch by changing one import line.

Differences from the seed, all in the user's favour:

* the exchange is google-auth's, with the subject token bound to its audience (see :mod:`.credentials`);
* a valid token is reused (one exchange per token lifetime per process) instead of a new exchange on every call;
* failures are :class:`~airflow_provider_gcp_wif.errors.WifExchangeError` / ``WifConfigError`` naming the step or
  the variable, and the fix; ``repr()`` shows no token;
* ``sts_endpoint=`` / ``iam_endpoint=`` (or ``GCP_WIF_STS_ENDPOINT`` / ``GCP_WIF_IAM_ENDPOINT``) reach Private
  Service Connect endpoints or the emulator; AWS calls honour boto3's ``AWS_ENDPOINT_URL`` variables.

Endpoint allow-list without Airflow: the process environment is the deployment. An endpoint that is not Google's,
loopback included, is admitted only when ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS`` lists its host: read from
``os.environ`` for ``TokenService(...)`` (a keyword argument names an endpoint, it cannot allow one), and from the
mapping :meth:`TokenService.from_env` reads (``os.environ`` by default), which stands for the environment in
which ``GCP_WIF_STS_ENDPOINT`` is set. ``python -m airflow_provider_gcp_wif.testing`` prints that variable with the
emulator's host.

Like the seed, when ``aws_role_name`` is given the base AWS credentials (boto3's default chain: environment,
``AWS_PROFILE``, container or instance role) first assume ``arn:aws:iam::<aws_account_id>:role/<aws_role_name>``;
botocore refreshes that role session before it expires.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_gcp_wif.config import SEED_ENV, WifSettings
from airflow_provider_gcp_wif.constants import AWS_ACCOUNT_ID_ENV, AWS_ROLE_NAME_ENV
from airflow_provider_gcp_wif.credentials import WifCredentials, get_credentials
from airflow_provider_gcp_wif.errors import WifConfigError
from airflow_provider_gcp_wif.fields import BY_KEY
from airflow_provider_gcp_wif.resource_names import iam_role_arn
from airflow_provider_gcp_wif.supplier import Boto3Supplier
from airflow_provider_gcp_wif.transport import exchange_transport

if TYPE_CHECKING:
    import boto3

ROLE_SESSION_NAME = "airflow-provider-gcp-wif"
#: The connection fields the seed's arguments (and variables) feed, in the seed's order.
SEED_FIELDS = tuple(BY_KEY[key] for key in SEED_ENV.values())


def assume_role_session(
    role_arn: str, *, region: str | None = None, profile: str | None = None
) -> boto3.session.Session:
    """A boto3 session whose credentials are ``role_arn`` assumed with the default chain's credentials, refreshed
    by botocore ahead of expiry (the same mechanism as the AWS CLI's ``role_arn`` profiles)."""
    import boto3
    import botocore.session
    from botocore.credentials import AssumeRoleCredentialFetcher, DeferredRefreshableCredentials

    base = boto3.session.Session(profile_name=profile, region_name=region)
    source = base.get_credentials()
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=base._session.create_client,
        source_credentials=source,
        role_arn=role_arn,
        extra_args={"RoleSessionName": ROLE_SESSION_NAME},
    )
    core = botocore.session.Session(profile=profile)
    core._credentials = DeferredRefreshableCredentials(
        method="assume-role", refresh_using=fetcher.fetch_credentials
    )
    return boto3.session.Session(botocore_session=core, region_name=region or base.region_name)


class TokenService:
    """Get a Google access token for an AWS identity.

    Args:
        gcp_project_number: number of the project that owns the workload identity pool.
        gcp_workload_id: the pool id.
        gcp_workload_provider: the AWS provider id in that pool.
        gcp_service_account_email: the service account to impersonate; empty or ``None`` returns the federated
            token itself (direct resource access).
        aws_account_id: with ``aws_role_name``, the account of the role to assume first.
        aws_role_name: the role to assume first; ``None`` signs with the base credentials as they are.
        aws_region: region for the signed ``GetCallerIdentity`` (and the role assumption).
        gcp_token_lifetime: lifetime of the service-account token in seconds (``3600`` or ``"3600s"``; up to
            43200 where Google's org policy allows).
        gcp_token_scopes: OAuth scopes, a comma-separated string or a list (default cloud-platform).
        sts_endpoint: STS token URL (default Google's, or ``GCP_WIF_STS_ENDPOINT``).
        iam_endpoint: IAM Credentials base URL (default Google's, or ``GCP_WIF_IAM_ENDPOINT``).
        federation: ``sigv4`` (default) or ``jwt`` (AWS STS GetWebIdentityToken for an OIDC provider), or
            ``GCP_WIF_FEDERATION``.

    Raises:
        WifConfigError: a setting is malformed (raised here, before any network call).
    """

    def __init__(
        self,
        gcp_project_number: str | None,
        gcp_workload_id: str | None,
        gcp_workload_provider: str | None,
        gcp_service_account_email: str | None,
        aws_account_id: str | None = None,
        aws_role_name: str | None = None,
        aws_region: str | None = None,
        gcp_token_lifetime: int | str | None = None,
        gcp_token_scopes: str | list[str] | None = None,
        *,
        sts_endpoint: str | None = None,
        iam_endpoint: str | None = None,
        federation: str | None = None,
    ) -> None:
        given = {
            "gcp_project_number": gcp_project_number,
            "gcp_workload_id": gcp_workload_id,
            "gcp_workload_provider": gcp_workload_provider,
            "gcp_service_account_email": gcp_service_account_email,
            "aws_region": aws_region,
            "gcp_token_lifetime": gcp_token_lifetime,
            "gcp_token_scopes": gcp_token_scopes,
            "sts_endpoint": sts_endpoint,
            "iam_endpoint": iam_endpoint,
            "federation": federation,
        }
        extras: dict[str, Any] = {}
        arguments: dict[str, str] = {}
        for field in SEED_FIELDS:
            assert field.seed_argument is not None and field.seed_env is not None
            value = given[field.seed_argument]
            extras[field.key] = (value or os.environ.get(field.seed_env)) if field.seed_keyword else value
            arguments[field.key] = field.seed_argument
        try:
            settings = WifSettings.from_extras(extras)
        except WifConfigError as err:
            raise WifConfigError(arguments.get(err.field, err.field), err.problem, err.fix) from None
        self._init(settings, aws_account_id, aws_role_name)

    def _init(self, settings: WifSettings, aws_account_id: str | None, aws_role_name: str | None) -> None:
        self.settings = settings
        self.aws_account_id = aws_account_id
        self.aws_role_name = aws_role_name
        if aws_role_name:
            if not aws_account_id or not aws_account_id.isdigit() or len(aws_account_id) != 12:
                raise WifConfigError(
                    "aws_account_id",
                    f"{aws_account_id!r} is not a 12-digit AWS account id, and aws_role_name needs one.",
                    "set AWS_ACCOUNT_ID (`aws sts get-caller-identity --query Account`).",
                )
            role_arn = iam_role_arn(aws_account_id, aws_role_name)
            region = settings.aws_region
            profile = os.environ.get("AWS_PROFILE") or None
            digest = hashlib.sha256(
                f"{profile}|{os.environ.get('AWS_ACCESS_KEY_ID', '')}|{role_arn}".encode()
            ).hexdigest()[:16]
            self.supplier = Boto3Supplier(
                lambda: assume_role_session(role_arn, region=region, profile=profile),
                region=region,
                identity_key=f"assume-role:{digest}",
                description=f"role {role_arn} (assumed with the default AWS credential chain)",
            )
        else:
            self.supplier = Boto3Supplier.default_chain(region=settings.aws_region)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TokenService:
        """Read the seed's variables: ``GCP_PROJECT_NUMBER GCP_WORKLOAD_ID GCP_WORKLOAD_PROVIDER
        GCP_SERVICE_ACCOUNT_EMAIL AWS_ACCOUNT_ID AWS_ROLE_NAME AWS_REGION TOKEN_LIFETIME TOKEN_SCOPES``, plus
        ``GCP_WIF_STS_ENDPOINT`` / ``GCP_WIF_IAM_ENDPOINT``. Errors name the variable."""
        env = os.environ if environ is None else environ
        settings = WifSettings.from_env(env)
        service = cls.__new__(cls)
        service._init(settings, env.get(AWS_ACCOUNT_ID_ENV) or None, env.get(AWS_ROLE_NAME_ENV) or None)
        return service

    def __repr__(self) -> str:
        return (
            f"TokenService(audience={self.settings.audience!r}, "
            f"service_account={self.settings.service_account!r}, aws={self.supplier.description!r})"
        )

    __str__ = __repr__

    @property
    def credentials(self) -> WifCredentials:
        """The shared google-auth credentials (usable directly with Google's client libraries)."""
        return get_credentials(self.settings, self.supplier)

    def get_token(self) -> tuple[str, str]:
        """Return ``(access_token, expire_time)``, the expiry in RFC 3339 (``2026-01-01T12:00:00Z``) as IAM
        Credentials writes it. A still-valid token is reused.

        Raises:
            WifExchangeError: naming the failed step (``aws_credentials``, ``sts_exchange``, ``impersonation``).
        """
        credentials = self.credentials
        credentials.refresh(exchange_transport())
        assert credentials.token is not None
        return credentials.token, rfc3339(credentials.expiry)


def rfc3339(moment: datetime.datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")



__all__ = ["SEED_ENV", "TokenService"]
