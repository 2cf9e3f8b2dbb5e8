"""The connection fields of a ``gcp_wif`` connection, declared once.

Each :class:`Field` says what the rest of the provider needs to know about one extras key: its label and help text
(the connection form), its JSON schema, limits and default, the seed package's variable and ``TokenService``
argument that feed it, the ``gcp-wif setup`` flag named in its errors, which parser step of
:class:`~airflow_provider_gcp_wif.config.WifSettings` validates it, and whether the key alone marks a connection as
``gcp_wif``. Derived from :data:`FIELDS`: ``config.KNOWN_KEYS`` and ``config.SEED_ENV``, ``provider_info.CONN_FIELDS``
(and through it the provider info's ``conn-fields``/placeholders and the hook's form widgets), the keys
``integration`` recognises, ``TokenService``'s argument mapping, setup's flag names, the dispatch of
``WifSettings.replace`` and the defaults of ``WifSettings``.

Adding a field: a :class:`Field` here, its attribute on ``WifSettings`` and its parser step in ``extras_parser.py``.

Core layer, metadata only: imports nothing but :mod:`airflow_provider_gcp_wif.constants` (``provider_info`` loads it at
provider discovery).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from airflow_provider_gcp_wif.constants import CLOUD_PLATFORM_SCOPE, DEFAULT_UNIVERSE_DOMAIN, PROJECT_NUMBER_PATTERN

#: ``federation``: how the AWS identity proves itself to Google. ``sigv4``: a signed GetCallerIdentity request (an
#: AWS provider of the pool); ``jwt``: a JWT from AWS STS GetWebIdentityToken (an OIDC provider of the pool).
FEDERATION_ROUTES = ("sigv4", "jwt")
MAX_LIFETIME_SECONDS = 43200
MAX_RETRIES = 20

#: The seed's ``TokenService`` arguments in its order (its README lists the variables in the same order), then the
#: keyword arguments this provider added.
SEED_ARGUMENTS = ("gcp_project_number", "gcp_workload_id", "gcp_workload_provider", "gcp_service_account_email",
                  "aws_account_id", "aws_role_name", "aws_region", "gcp_token_lifetime", "gcp_token_scopes",
                  "sts_endpoint", "iam_endpoint", "federation")


class Field(NamedTuple):
    """One extras key of a ``gcp_wif`` connection (a named tuple rather than a dataclass: ``provider_info`` imports
    this at provider discovery, and ``dataclasses`` would double the cost of that import).

    Attributes:
        key: the extras key (no key may carry a word Airflow masks: token, secret, password, service_account,
            private_key, proxy ...; values stay readable in the UI and logs).
        label, description: the connection form's label and help text. Airflow 3.2+'s React UI shows no
            placeholders for extra fields, so a description names the expected format where it matters.
        schema: the JSON schema of ``conn-fields`` (``minimum``/``maximum``/``default`` are added from the fields
            below).
        placeholder: the form's placeholder; ``None``: the default as text (or none without a default).
        default: the value used when the key is not set, as ``WifSettings`` holds it (``None``: no default, or one
            derived from other fields).
        form_default: whether the form is prefilled with ``default`` (``schema["default"]``).
        minimum, maximum: the limits of an integer field.
        parser: the step of ``extras_parser.STEPS`` that validates it (keys sharing a step are parsed together).
        rechecks: other fields whose parser steps run again when this one changes (``WifSettings.replace``).
        seed_env: the seed package's environment variable feeding it (``WifSettings.from_env``).
        seed_argument: the ``TokenService`` argument feeding it; errors about it name the argument.
        seed_keyword: a keyword argument this provider added to ``TokenService``, which falls back to
            ``seed_env`` when not given.
        setup_flag: the ``gcp-wif setup`` flag whose value it validates; errors name the flag.
        marks_wif: a key no ``google_cloud_platform`` connection has: its presence alone marks a connection as
            ``gcp_wif`` to the ``GoogleBaseHook`` extension.
    """

    key: str
    label: str
    description: str
    schema: Mapping[str, Any]
    parser: str
    placeholder: str | None = None
    default: Any = None
    form_default: bool = False
    minimum: int | None = None
    maximum: int | None = None
    rechecks: tuple[str, ...] = ()
    seed_env: str | None = None
    seed_argument: str | None = None
    seed_keyword: bool = False
    setup_flag: str | None = None
    marks_wif: bool = False

    @property
    def json_schema(self) -> dict[str, Any]:
        schema = dict(self.schema)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.form_default:
            schema["default"] = self.default
        return schema

    @property
    def form_placeholder(self) -> str:
        if self.placeholder is not None:
            return self.placeholder
        return "" if self.default is None else str(self.default)


_STRING = {"type": ["string", "null"]}
_URL = {"type": ["string", "null"], "format": "url"}
_INTEGER = {"type": ["integer", "null"]}

FIELDS: tuple[Field, ...] = (
    Field(
        "aws_conn_id", "AWS Connection Id",
        "The Airflow AWS connection whose identity is exchanged (on MWAA: aws_default, the execution role). Its "
        "keys, role_arn, profile or the ambient role are used as the Amazon provider would.",
        _STRING, parser="aws_conn_id", default="aws_default", form_default=True,
        marks_wif=True,
    ),
    Field(
        "project_number", "Pool Project Number",
        "Number (digits, not the project ID) of the project that owns the workload identity pool.",
        # The form's hint: empty, or a project number by the one grammar (resource_names.PROJECT_NUMBER).
        {"type": ["string", "null"], "pattern": f"^({PROJECT_NUMBER_PATTERN})?$"},
        parser="audience", placeholder="123456789012",
        seed_env="GCP_PROJECT_NUMBER", seed_argument="gcp_project_number",
        setup_flag="--project-number", marks_wif=True,
    ),
    Field(
        "pool_id", "Workload Identity Pool Id", "The pool id (4-32 lowercase letters, digits, hyphens).",
        _STRING, parser="audience", placeholder="aws-pool", seed_env="GCP_WORKLOAD_ID",
        seed_argument="gcp_workload_id", setup_flag="--pool-id", marks_wif=True,
    ),
    Field(
        "provider_id", "Workload Identity Provider Id", "The AWS provider's id in that pool.",
        _STRING, parser="audience", placeholder="aws-provider",
        seed_env="GCP_WORKLOAD_PROVIDER", seed_argument="gcp_workload_provider", setup_flag="--provider-id",
        marks_wif=True,
    ),
    Field(
        "audience", "Audience (instead of the three ids)",
        "The provider's full name, //iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/"
        "POOL/providers/PROVIDER; leave empty when the three ids above are set.",
        _STRING, parser="audience",
        placeholder="//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/"
        "PROVIDER",
        marks_wif=True,
    ),
    Field(
        "credential_config", "Credential Configuration JSON (optional)",
        "The JSON written by `gcloud iam workload-identity-pools create-cred-config --aws`; its audience, service "
        "account and lifetime are used, its AWS credential source is replaced by the AWS connection.",
        {"type": ["string", "null"], "format": "multiline"}, parser="credential_config",
        placeholder='{"type": "external_account", "audience": "//iam.googleapis.com/...", ...}',
        # Its universe and endpoints never win over the explicit ones a WifSettings already holds.
        rechecks=("audience", "impersonation_chain", "lifetime_seconds", "quota_project_id"), marks_wif=True,
    ),
    Field(
        "impersonation_chain", "Impersonation Chain (service accounts)",
        "Service account email(s) to impersonate (airflow@PROJECT_ID.iam.gserviceaccount.com), comma separated; "
        "the last one's token is used. Empty: the federated identity is used directly. An operator's "
        "impersonation_chain replaces it.",
        _STRING, parser="impersonation_chain", placeholder="airflow@PROJECT_ID.iam.gserviceaccount.com",
        default=(), seed_env="GCP_SERVICE_ACCOUNT_EMAIL",
        seed_argument="gcp_service_account_email", setup_flag="--service-account",
    ),
    Field(
        "project", "Project Id", "Default project for operators that do not name one.",
        _STRING, parser="project", placeholder="my-project", setup_flag="--project-id",
    ),
    Field(
        "scope", "Scopes (comma separated)", f"OAuth scopes; default {CLOUD_PLATFORM_SCOPE}.",
        _STRING, parser="scopes", placeholder=CLOUD_PLATFORM_SCOPE, default=(CLOUD_PLATFORM_SCOPE,),
        seed_env="TOKEN_SCOPES", seed_argument="gcp_token_scopes",
    ),
    Field(
        "lifetime_seconds", "Token Lifetime (seconds)",
        f"Lifetime of the impersonated token, 1-{MAX_LIFETIME_SECONDS}; over 3600 needs the org policy "
        "iam.allowServiceAccountCredentialLifetimeExtension.",
        _INTEGER, parser="lifetime", default=3600, form_default=True, minimum=1, maximum=MAX_LIFETIME_SECONDS,
        seed_env="TOKEN_LIFETIME", seed_argument="gcp_token_lifetime",
    ),
    Field(
        "quota_project_id", "Quota Project Id", "Project billed for API quota, if not the resource's own.",
        _STRING, parser="quota_project_id",
    ),
    Field(
        "aws_region", "AWS Region",
        "Region of the signed GetCallerIdentity request (sigv4) or of the GetWebIdentityToken call (jwt); "
        "default: the AWS connection's region, then AWS_REGION.",
        _STRING, parser="region", placeholder="us-east-1", seed_env="AWS_REGION",
        seed_argument="aws_region",
    ),
    Field(
        "universe_domain", "Universe Domain",
        f"Google universe; default {DEFAULT_UNIVERSE_DOMAIN}. Others must be allowed by the deployment.",
        _STRING, parser="universe_domain", default=DEFAULT_UNIVERSE_DOMAIN,
        rechecks=("audience", "sts_endpoint", "iam_endpoint"), setup_flag="--universe-domain",
    ),
    Field(
        "sts_endpoint", "STS Endpoint (Private Service Connect)",
        f"Token URL; default https://sts.{DEFAULT_UNIVERSE_DOMAIN}/v1/token. Hosts other than Google's need "
        "[gcp_wif] allowed_endpoint_hosts.",
        _URL, parser="sts_endpoint", default=f"https://sts.{DEFAULT_UNIVERSE_DOMAIN}/v1/token",
        seed_env="GCP_WIF_STS_ENDPOINT", seed_argument="sts_endpoint", seed_keyword=True,
    ),
    Field(
        "iam_endpoint", "IAM Credentials Endpoint (Private Service Connect)",
        f"Base URL; default https://iamcredentials.{DEFAULT_UNIVERSE_DOMAIN}.",
        _URL, parser="iam_endpoint", default=f"https://iamcredentials.{DEFAULT_UNIVERSE_DOMAIN}",
        seed_env="GCP_WIF_IAM_ENDPOINT", seed_argument="iam_endpoint", seed_keyword=True,
    ),
    Field(
        "num_retries", "Number of Retries", "Retries of transient failures, as on the Google Cloud connection.",
        _INTEGER, parser="num_retries", default=5, form_default=True, minimum=0, maximum=MAX_RETRIES,
    ),
    Field(
        "federation", "Federation Route",
        "sigv4 (default): a signed AWS GetCallerIdentity request, for an AWS provider of the pool. jwt: a JWT from "
        "AWS STS GetWebIdentityToken (IAM outbound identity federation, botocore 1.41.0+), for an OIDC provider "
        "trusting the AWS account's issuer.",
        {"type": ["string", "null"], "enum": [*FEDERATION_ROUTES, None]}, parser="federation",
        default=FEDERATION_ROUTES[0], form_default=True, seed_env="GCP_WIF_FEDERATION",
        seed_argument="federation", seed_keyword=True, marks_wif=True,
    ),
)

#: The fields by key, in form order.
BY_KEY: dict[str, Field] = {field.key: field for field in FIELDS}

#: Every extras key, in form order.
KEYS: tuple[str, ...] = tuple(BY_KEY)

#: The seed's variables and the keys they feed, in the seed's argument order.
SEED_ENV: dict[str, str] = {
    field.seed_env: field.key
    for field in sorted((f for f in FIELDS if f.seed_env), key=lambda f: SEED_ARGUMENTS.index(f.seed_argument or ""))
    if field.seed_env
}

#: Keys whose presence marks a connection as ``gcp_wif`` (no ``google_cloud_platform`` connection has them).
WIF_MARKER_KEYS: frozenset[str] = frozenset(field.key for field in FIELDS if field.marks_wif)

#: ``gcp-wif setup``'s flag for each field it validates through ``WifSettings``.
SETUP_FLAGS: dict[str, str] = {field.key: field.setup_flag for field in FIELDS if field.setup_flag}


def default(key: str) -> Any:
    """The default of field ``key`` (see :attr:`Field.default`)."""
    return BY_KEY[key].default


def seed_variable(key: str) -> str:
    """The seed's environment variable of field ``key`` (``KeyError`` if it has none)."""
    variable = BY_KEY[key].seed_env
    if variable is None:
        raise KeyError(key)
    return variable
