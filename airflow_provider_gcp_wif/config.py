"""``WifSettings``: the one place that turns loose settings into a validated, immutable description of an exchange.

Inputs, all funnelled through :meth:`WifSettings.from_extras`:

* a ``gcp_wif`` connection's extras (every key of DESIGN.md's table, also in the legacy ``extra__gcp_wif__<key>``
  form; the plain key wins when both are present, as on Airflow's Google Cloud connection);
* a credential-config JSON written by ``gcloud iam workload-identity-pools create-cred-config --aws`` or the Cloud
  console (extra ``credential_config``, or :meth:`WifSettings.from_credential_config`): its audience, token URL,
  impersonation URL, token lifetime, quota project and universe domain are used, its AWS ``credential_source`` is
  replaced by the AWS connection; explicit extras win over values from the file, except that an audience that
  disagrees with the file's is an error;
* the seed package's environment variables (:meth:`WifSettings.from_env`).

Validation happens here, before any network call, and every failure is a :class:`WifConfigError` naming the field
and the fix. Empty strings count as "not set" (Airflow's forms save them for untouched fields).

Endpoint allow-list: STS and IAM Credentials endpoints must be Google's (hosts under ``googleapis.com``, which
includes the ``*.p.googleapis.com`` Private Service Connect names), loopback (local emulators), or hosts the
*deployment* allows through ``[gcp_wif] allowed_endpoint_hosts`` / ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS``
(comma separated host names; ``.example.com`` allows sub-domains). A universe domain other than
``googleapis.com`` must be allowed the same way. A connection editor cannot loosen this: the signed AWS request is a
bearer credential and must reach Google's STS and nothing else.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import urlsplit

from airflow_provider_gcp_wif.errors import WifConfigError

log = logging.getLogger(__name__)

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_UNIVERSE_DOMAIN = "googleapis.com"
AWS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"
LEGACY_PREFIX = "extra__gcp_wif__"
ALLOWED_HOSTS_ENV = "AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS"
MAX_LIFETIME_SECONDS = 43200

KNOWN_KEYS: tuple[str, ...] = (
    "aws_conn_id",
    "project_number",
    "pool_id",
    "provider_id",
    "audience",
    "credential_config",
    "impersonation_chain",
    "project",
    "scope",
    "lifetime_seconds",
    "quota_project_id",
    "aws_region",
    "universe_domain",
    "sts_endpoint",
    "iam_endpoint",
    "num_retries",
)

# The seed package's variables (see the README's migration section) and the keys they feed.
SEED_ENV: dict[str, str] = {
    "GCP_PROJECT_NUMBER": "project_number",
    "GCP_WORKLOAD_ID": "pool_id",
    "GCP_WORKLOAD_PROVIDER": "provider_id",
    "GCP_SERVICE_ACCOUNT_EMAIL": "impersonation_chain",
    "AWS_REGION": "aws_region",
    "TOKEN_LIFETIME": "lifetime_seconds",
    "TOKEN_SCOPES": "scope",
    "GCP_WIF_STS_ENDPOINT": "sts_endpoint",
    "GCP_WIF_IAM_ENDPOINT": "iam_endpoint",
}

_POOL_ID = re.compile(r"^[a-z0-9-]{4,32}$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
_PROJECT_ID = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_AUDIENCE = re.compile(
    r"^//iam\.(?P<domain>[a-z0-9.-]+)/projects/(?P<number>[^/]+)/locations/global/"
    r"workloadIdentityPools/(?P<pool>[^/]+)/providers/(?P<provider>[^/]+)$"
)
_SHORT_SCOPES = {"openid", "email", "profile"}
_IMPERSONATION_URL = re.compile(r"^(?P<base>https?://[^/]+)/v1/projects/-/serviceAccounts/(?P<email>[^:/]+):generateAccessToken$")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def deployment_allowed_hosts(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The deployment's extra endpoint hosts, from ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS``.

    Airflow-facing code passes ``conf.get("gcp_wif", "allowed_endpoint_hosts")`` instead, which reads the same
    variable and ``airflow.cfg``."""
    raw = (environ if environ is not None else os.environ).get(ALLOWED_HOSTS_ENV, "")
    return parse_allowed_hosts(raw)


def parse_allowed_hosts(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    return tuple(item.strip().lower().lstrip("*") for item in items if item and item.strip())


def _host_allowed(host: str, allowed: tuple[str, ...], universe_domain: str) -> bool:
    host = host.lower()
    if _loopback(host):
        return True
    if host == universe_domain or host.endswith("." + universe_domain):
        return universe_domain == DEFAULT_UNIVERSE_DOMAIN or _listed(universe_domain, allowed)
    return _listed(host, allowed)


def _listed(host: str, allowed: tuple[str, ...]) -> bool:
    for entry in allowed:
        if entry.startswith("."):
            if host.endswith(entry) or host == entry[1:]:
                return True
        elif host == entry:
            return True
    return False


@dataclass(frozen=True)
class WifSettings:
    """A validated description of one AWS → Google exchange. Build it with :meth:`from_extras`, :meth:`from_env`
    or :meth:`from_credential_config`; all fields are already checked and normalised.

    Attributes:
        audience: ``//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X``.
        project_number, pool_id, provider_id: the three parts of the audience.
        aws_conn_id: the Airflow AWS connection that supplies the AWS identity.
        impersonation_chain: service accounts to impersonate in order; the last one's token is used. Empty means
            direct resource access with the federated token.
        project: default project id for operators (``None``: operators must name one).
        scopes: OAuth scopes of the tokens.
        lifetime_seconds: lifetime of the impersonated token (1-43200; over 3600 needs Google's org policy).
        quota_project_id: the billing/quota project, or ``None``.
        aws_region: region of the signed ``GetCallerIdentity``; ``None`` means "the AWS session's region".
        universe_domain: the Google universe.
        sts_endpoint: the full STS token URL.
        iam_endpoint: the IAM Credentials base URL (``<base>/v1/projects/-/serviceAccounts/...``).
        num_retries: retries for transient failures, as on the Google Cloud connection.
        conn_id: the Airflow connection id the settings came from (for messages only).
    """

    audience: str
    project_number: str
    pool_id: str
    provider_id: str
    aws_conn_id: str = "aws_default"
    impersonation_chain: tuple[str, ...] = ()
    project: str | None = None
    scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)
    lifetime_seconds: int = 3600
    quota_project_id: str | None = None
    aws_region: str | None = None
    universe_domain: str = DEFAULT_UNIVERSE_DOMAIN
    sts_endpoint: str = "https://sts.googleapis.com/v1/token"
    iam_endpoint: str = "https://iamcredentials.googleapis.com"
    num_retries: int = 5
    conn_id: str | None = field(default=None, compare=False)

    # -- derived ---------------------------------------------------------------------------------------------

    @property
    def service_account(self) -> str | None:
        """The account whose token is used, or ``None`` for direct resource access."""
        return self.impersonation_chain[-1] if self.impersonation_chain else None

    @property
    def delegates(self) -> tuple[str, ...]:
        """The accounts between the federated identity and :attr:`service_account`."""
        return self.impersonation_chain[:-1]

    def impersonation_url(self, email: str) -> str:
        return f"{self.iam_endpoint}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"

    @property
    def pool_resource(self) -> str:
        return (
            f"//iam.{self.universe_domain}/projects/{self.project_number}/locations/global/"
            f"workloadIdentityPools/{self.pool_id}"
        )

    def replace(self, **changes: Any) -> WifSettings:
        """A copy with ``changes`` (raw values, as in extras) validated like the originals."""
        extras = {key: getattr(self, key) for key in KNOWN_KEYS if hasattr(self, key)}
        extras["scope"] = ",".join(self.scopes)
        extras.pop("credential_config", None)
        extras.update(changes)
        # Endpoints already passed the allow-list; a change to them is checked again.
        touches_endpoints = bool({"sts_endpoint", "iam_endpoint", "universe_domain"} & changes.keys())
        return WifSettings.from_extras(
            extras, conn_id=self.conn_id, allowed_endpoint_hosts=None if touches_endpoints else _ALLOW_ALL
        )

    def __repr__(self) -> str:
        return (
            f"WifSettings(conn_id={self.conn_id!r}, audience={self.audience!r}, aws_conn_id={self.aws_conn_id!r}, "
            f"impersonation_chain={self.impersonation_chain!r}, sts_endpoint={self.sts_endpoint!r})"
        )

    # -- constructors ----------------------------------------------------------------------------------------

    @classmethod
    def from_extras(
        cls,
        extras: Mapping[str, Any] | None,
        *,
        conn_id: str | None = None,
        allowed_endpoint_hosts: str | Iterable[str] | None = None,
    ) -> WifSettings:
        """Validate a connection's extras.

        Args:
            extras: the connection's extra dict (plain or ``extra__gcp_wif__``-prefixed keys).
            conn_id: the connection id, named in error messages.
            allowed_endpoint_hosts: the deployment's allow-list; ``None`` reads
                ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS``.

        Raises:
            WifConfigError: naming the first field that is wrong, and the fix.
        """
        return _Parser(extras or {}, conn_id, allowed_endpoint_hosts).settings()

    @classmethod
    def from_credential_config(
        cls,
        info: str | Mapping[str, Any],
        *,
        conn_id: str | None = None,
        allowed_endpoint_hosts: str | Iterable[str] | None = None,
        **extras: Any,
    ) -> WifSettings:
        """Settings from a downloaded credential-config JSON (text or parsed), with ``extras`` on top."""
        return cls.from_extras(
            {**extras, "credential_config": info}, conn_id=conn_id, allowed_endpoint_hosts=allowed_endpoint_hosts
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> WifSettings:
        """Settings from the seed package's variables (``GCP_PROJECT_NUMBER``, ``GCP_WORKLOAD_ID``,
        ``GCP_WORKLOAD_PROVIDER``, ``GCP_SERVICE_ACCOUNT_EMAIL``, ``AWS_REGION``, ``TOKEN_LIFETIME``,
        ``TOKEN_SCOPES``, ``GCP_WIF_STS_ENDPOINT``, ``GCP_WIF_IAM_ENDPOINT``); errors name the variable."""
        env = os.environ if environ is None else environ
        extras = {key: env.get(var) for var, key in SEED_ENV.items() if env.get(var)}
        extras.update({k: v for k, v in overrides.items() if v is not None})
        names = {key: var for var, key in SEED_ENV.items()}
        try:
            return cls.from_extras(extras, allowed_endpoint_hosts=deployment_allowed_hosts(env))
        except WifConfigError as err:
            if err.field in names and err.field not in overrides:
                raise WifConfigError(names[err.field], err.problem, err.fix) from None
            raise


_ALLOW_ALL = ("__already_validated__",)


class _Parser:
    """Reads, normalises and checks one set of raw settings; ``settings()`` returns the result."""

    def __init__(
        self, raw: Mapping[str, Any], conn_id: str | None, allowed: str | Iterable[str] | None
    ) -> None:
        self.conn_id = conn_id
        if not isinstance(raw, Mapping):
            self.fail("extra", f"must be a JSON object, not {type(raw).__name__}.", "store extras as a JSON object.")
        self.values: dict[str, Any] = {}
        for key, value in raw.items():
            plain = key[len(LEGACY_PREFIX):] if key.startswith(LEGACY_PREFIX) else key
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if plain in self.values and key != plain:
                continue  # the plain key wins over the legacy prefixed one
            self.values[plain] = value
        self._warn_unknown()
        self.allowed: tuple[str, ...]
        if allowed is _ALLOW_ALL:
            self.allowed = _ALLOW_ALL
        elif allowed is None:
            self.allowed = deployment_allowed_hosts()
        else:
            self.allowed = parse_allowed_hosts(allowed)

    # -- helpers ---------------------------------------------------------------------------------------------

    def fail(self, name: str, problem: str, fix: str) -> NoReturn:
        raise WifConfigError(name, problem, fix, conn_id=self.conn_id)

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not isinstance(value, str | int):
            self.fail(name, f"must be text, not {type(value).__name__}.", "store it as a JSON string.")
        return str(value).strip()

    def _warn_unknown(self) -> None:
        for key in self.values:
            if key not in KNOWN_KEYS:
                close = difflib.get_close_matches(key, KNOWN_KEYS, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(KNOWN_KEYS)}."
                log.warning(
                    "gcp_wif connection %r: unknown extra %r is ignored.%s", self.conn_id or "", key, hint
                )

    # -- fields ----------------------------------------------------------------------------------------------

    def settings(self) -> WifSettings:
        from_file = self.credential_config()
        universe = self.universe_domain(from_file.get("universe_domain"))
        audience, number, pool, provider = self.audience(from_file.get("audience"), universe)
        chain = self.impersonation_chain(from_file.get("service_account"))
        lifetime = self.lifetime(from_file.get("lifetime_seconds"))
        if lifetime != 3600 and not chain:
            log.warning(
                "gcp_wif connection %r: lifetime_seconds applies to impersonated tokens only; the federated "
                "token's lifetime is set by Google.",
                self.conn_id or "",
            )
        sts = self.endpoint("sts_endpoint", from_file.get("sts_endpoint"), f"https://sts.{universe}/v1/token",
                            universe, token_url=True)
        iam = self.endpoint("iam_endpoint", from_file.get("iam_endpoint"), f"https://iamcredentials.{universe}",
                            universe, token_url=False)
        return WifSettings(
            audience=audience,
            project_number=number,
            pool_id=pool,
            provider_id=provider,
            aws_conn_id=self.aws_conn_id(),
            impersonation_chain=chain,
            project=self.project_id("project"),
            scopes=self.scopes(),
            lifetime_seconds=lifetime,
            quota_project_id=self.project_id("quota_project_id") or from_file.get("quota_project_id"),
            aws_region=self.region(),
            universe_domain=universe,
            sts_endpoint=sts,
            iam_endpoint=iam,
            num_retries=self.num_retries(),
            conn_id=self.conn_id,
        )

    def aws_conn_id(self) -> str:
        value = self.text("aws_conn_id") or "aws_default"
        if any(ch.isspace() for ch in value):
            self.fail("aws_conn_id", f"{value!r} contains whitespace.", "name an existing Airflow AWS connection id.")
        return value

    def credential_config(self) -> dict[str, Any]:
        raw = self.values.get("credential_config")
        if raw is None:
            return {}
        name = "credential_config"
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as err:
                self.fail(name, f"is not valid JSON ({err.msg} at line {err.lineno}).",
                          "paste the whole file written by `gcloud iam workload-identity-pools create-cred-config "
                          "... --aws`.")
        if not isinstance(raw, Mapping):
            self.fail(name, "must be a JSON object.", "paste the whole credential configuration file.")
        if raw.get("type") != "external_account":
            self.fail(name, f"has type {raw.get('type')!r}, expected 'external_account'.",
                      "use the file from `gcloud iam workload-identity-pools create-cred-config ... --aws`; a "
                      "service-account key does not belong in a gcp_wif connection.")
        token_type = raw.get("subject_token_type")
        if token_type != AWS_SUBJECT_TOKEN_TYPE:
            self.fail(name, f"is for subject_token_type {token_type!r}, not AWS ({AWS_SUBJECT_TOKEN_TYPE}).",
                      "create the configuration with `--aws` for an AWS provider of the pool.")
        result: dict[str, Any] = {}
        if raw.get("audience"):
            result["audience"] = raw["audience"]
        if raw.get("token_url"):
            result["sts_endpoint"] = raw["token_url"]
        if raw.get("universe_domain"):
            result["universe_domain"] = raw["universe_domain"]
        if raw.get("quota_project_id"):
            result["quota_project_id"] = raw["quota_project_id"]
        url = raw.get("service_account_impersonation_url")
        if url:
            match = _IMPERSONATION_URL.match(str(url))
            if not match:
                self.fail(name, f"has a service_account_impersonation_url that is not a generateAccessToken URL: "
                                f"{url!r}.", "re-create the file with --service-account=EMAIL.")
            result["service_account"] = match.group("email")
            result["iam_endpoint"] = match.group("base")
        options = raw.get("service_account_impersonation") or {}
        if isinstance(options, Mapping) and options.get("token_lifetime_seconds"):
            result["lifetime_seconds"] = options["token_lifetime_seconds"]
        return result

    def universe_domain(self, from_file: str | None) -> str:
        value = (self.text("universe_domain") or from_file or DEFAULT_UNIVERSE_DOMAIN).lower()
        if not _HOSTNAME.match(value):
            self.fail("universe_domain", f"{value!r} is not a domain name.", "leave it empty for googleapis.com.")
        if value != DEFAULT_UNIVERSE_DOMAIN and self.allowed is not _ALLOW_ALL and not _listed(value, self.allowed):
            self.fail("universe_domain", f"{value!r} is not allowed by this deployment.",
                      f"an Airflow administrator adds it to [gcp_wif] allowed_endpoint_hosts ({ALLOWED_HOSTS_ENV}).")
        return value

    def audience(self, from_file: str | None, universe: str) -> tuple[str, str, str, str]:
        number = self.text("project_number")
        pool = self.text("pool_id")
        provider = self.text("provider_id")
        if number is not None:
            self.check_number(number)
        if pool is not None:
            self.check_pool_id("pool_id", pool)
        if provider is not None:
            self.check_pool_id("provider_id", provider)
        given = self.text("audience")
        if given and from_file and _normalise_audience(given) != _normalise_audience(from_file):
            self.fail("audience", f"{given!r} disagrees with the credential_config's audience {from_file!r}.",
                      "remove one of them.")
        raw_audience = given or from_file
        if raw_audience:
            audience = _normalise_audience(raw_audience)
            match = _AUDIENCE.match(audience)
            if not match or match.group("domain") != universe:
                self.fail("audience", f"{raw_audience!r} is not a workload identity provider's full name.",
                          f"use //iam.{universe}/projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/"
                          "POOL_ID/providers/PROVIDER_ID, or set project_number, pool_id and provider_id instead.")
            parts = {"project_number": match.group("number"), "pool_id": match.group("pool"),
                     "provider_id": match.group("provider")}
            self.check_number(parts["project_number"], "audience")
            self.check_pool_id("audience", parts["pool_id"], what="pool id")
            self.check_pool_id("audience", parts["provider_id"], what="provider id")
            for key, value in (("project_number", number), ("pool_id", pool), ("provider_id", provider)):
                if value is not None and value != parts[key]:
                    self.fail(key, f"{value!r} disagrees with the audience, which names {parts[key]!r}.",
                              "set either the audience or project_number/pool_id/provider_id, or make them agree.")
            return audience, parts["project_number"], parts["pool_id"], parts["provider_id"]
        missing = [k for k, v in (("project_number", number), ("pool_id", pool), ("provider_id", provider)) if not v]
        if missing:
            self.fail(missing[0], "is required to name the workload identity provider.",
                      "set project_number, pool_id and provider_id (or audience, or credential_config); "
                      "`gcp-wif setup` prints the commands that create them.")
        assert number and pool and provider
        audience = (f"//iam.{universe}/projects/{number}/locations/global/workloadIdentityPools/{pool}"
                    f"/providers/{provider}")
        return audience, number, pool, provider

    def check_number(self, value: str, name: str = "project_number") -> None:
        if not _DIGITS.match(value):
            self.fail(name, f"project number {value!r} must be digits only (the project NUMBER, not its ID).",
                      "find it with `gcloud projects describe PROJECT_ID --format='value(projectNumber)'`.")

    def check_pool_id(self, name: str, value: str, what: str | None = None) -> None:
        what = what or name.replace("_", " ")
        if not _POOL_ID.match(value):
            self.fail(name, f"{what} {value!r} must be 4-32 characters of lowercase letters, digits and hyphens.",
                      "copy the id from `gcloud iam workload-identity-pools list --location=global` (pools) or "
                      "`... providers list --workload-identity-pool=POOL_ID --location=global` (providers).")
        if value.startswith("gcp-"):
            self.fail(name, f"{what} {value!r} starts with 'gcp-', which Google reserves.",
                      "use the id of the pool/provider you created.")

    def impersonation_chain(self, from_file: str | None) -> tuple[str, ...]:
        raw = self.values.get("impersonation_chain")
        if raw is None:
            items: list[Any] = [from_file] if from_file else []
        elif isinstance(raw, str):
            items = raw.split(",")
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            self.fail("impersonation_chain", f"must be text or a list, not {type(raw).__name__}.",
                      "use service-account emails, comma separated.")
        chain = []
        for item in items:
            email = str(item).strip()
            if not email:
                continue
            if not _EMAIL.match(email):
                self.fail("impersonation_chain", f"{email!r} is not a service-account email.",
                          "use plain emails such as NAME@PROJECT_ID.iam.gserviceaccount.com, comma separated, "
                          "without quotes or spaces; leave it empty for direct resource access.")
            chain.append(email)
        return tuple(chain)

    def project_id(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and not _PROJECT_ID.match(value):
            self.fail(name, f"{value!r} is not a Google Cloud project id.",
                      "use the project ID (6-30 lowercase letters, digits, hyphens), e.g. my-project-123.")
        return value

    def scopes(self) -> tuple[str, ...]:
        raw = self.values.get("scope")
        if raw is None:
            return (CLOUD_PLATFORM_SCOPE,)
        items = raw if isinstance(raw, list | tuple) else re.split(r"[,\s]+", str(raw))
        scopes = tuple(dict.fromkeys(str(s).strip() for s in items if str(s).strip()))
        if not scopes:
            return (CLOUD_PLATFORM_SCOPE,)
        for scope in scopes:
            if scope in _SHORT_SCOPES:
                continue
            parts = urlsplit(scope)
            host = (parts.hostname or "").lower()
            google = host in ("googleapis.com", "google.com") or host.endswith((".googleapis.com", ".google.com"))
            if parts.scheme != "https" or not google:
                self.fail("scope", f"{scope!r} is not an OAuth scope.",
                          f"use Google OAuth scopes such as {CLOUD_PLATFORM_SCOPE}, comma separated (the URL of "
                          "your own service is an ID-token audience, not a scope).")
        return scopes

    def lifetime(self, from_file: Any) -> int:
        raw = self.values.get("lifetime_seconds", from_file)
        if raw is None:
            return 3600
        if isinstance(raw, bool):
            self.fail("lifetime_seconds", "must be a number of seconds, not true/false.", "use e.g. 3600.")
        text = str(raw).strip()
        if text.endswith("s"):
            text = text[:-1]
        try:
            value = int(float(text)) if re.fullmatch(r"[0-9]+(\.0+)?", text) else int(text)
        except ValueError:
            self.fail("lifetime_seconds", f"{raw!r} is not a number of seconds.",
                      "use e.g. 3600 or \"3600s\" (1 to 43200).")
        if not 1 <= value <= MAX_LIFETIME_SECONDS:
            self.fail("lifetime_seconds", f"{value} is outside 1-{MAX_LIFETIME_SECONDS} seconds.",
                      "use at most 3600, or up to 43200 where the org policy "
                      "constraints/iam.allowServiceAccountCredentialLifetimeExtension lists the service account.")
        return value

    def region(self) -> str | None:
        value = self.text("aws_region")
        if value is not None and not _REGION.match(value):
            self.fail("aws_region", f"{value!r} is not an AWS region.",
                      "use a region code such as us-east-1 or eu-west-2, or leave it empty to use the AWS "
                      "connection's region_name.")
        return value

    def num_retries(self) -> int:
        raw = self.values.get("num_retries")
        if raw is None:
            return 5
        try:
            value = int(str(raw).strip())
        except ValueError:
            value = -1
        if isinstance(raw, bool) or not 0 <= value <= 20:
            self.fail("num_retries", f"{raw!r} is not a whole number from 0 to 20.", "use e.g. 5 (the default).")
        return value

    def endpoint(self, name: str, from_file: str | None, default: str, universe: str, *, token_url: bool) -> str:
        raw = self.text(name) or from_file
        if not raw:
            return default
        parts = urlsplit(raw)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not host:
            self.fail(name, f"{raw!r} is not an http(s) URL.", f"use e.g. {default}.")
        if parts.username or parts.password or parts.query or parts.fragment:
            self.fail(name, f"{raw!r} must not contain credentials, a query or a fragment.", f"use e.g. {default}.")
        if parts.scheme == "http" and not _loopback(host):
            self.fail(name, f"{raw!r} uses plain http for a non-loopback host.", "use https.")
        if self.allowed is not _ALLOW_ALL and not _host_allowed(host, self.allowed, universe):
            self.fail(name, f"host {host!r} is not a Google endpoint, and this deployment does not allow it; the "
                            "signed AWS request is a credential and is only sent to Google.",
                      f"use Google's endpoint ({default}) or a Private Service Connect name under *.p.{universe}; "
                      f"an Airflow administrator can allow other hosts in [gcp_wif] allowed_endpoint_hosts "
                      f"({ALLOWED_HOSTS_ENV}).")
        path = parts.path.rstrip("/")
        base = f"{parts.scheme}://{parts.netloc}"
        if token_url:
            return base + (path or "/v1/token")
        if "/v1/" in path + "/":
            path = path[: (path + "/").index("/v1/")]
        return base + path


def _normalise_audience(value: str) -> str:
    value = value.strip().rstrip("/")
    for prefix in ("https:", "http:"):
        if value.startswith(prefix + "//"):
            return value[len(prefix):]
    return value


__all__ = ["CLOUD_PLATFORM_SCOPE", "KNOWN_KEYS", "WifSettings"]
