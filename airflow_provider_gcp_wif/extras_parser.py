"""The extras parser behind :class:`~airflow_provider_gcp_wif.config.WifSettings`: it reads one set of raw settings
(a connection's extras, a credential-config JSON, the seed's variables), normalises and checks each value, and
returns the settings' attributes; every failure is a :class:`WifConfigError` naming the field and the fix.

The checks run as named steps (:data:`STEPS`, in the order errors are reported in); a field of
:mod:`airflow_provider_gcp_wif.fields` names the step that parses it, so ``WifSettings.replace`` can run only the
steps a change needs.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_gcp_wif import fields, resource_names
from airflow_provider_gcp_wif.constants import (
    ALLOWED_HOSTS_ENV,
    AWS_SUBJECT_TOKEN_TYPE,
    CLOUD_PLATFORM_SCOPE,
    DEFAULT_UNIVERSE_DOMAIN,
    ID_TOKEN_SUBJECT_TOKEN_TYPE,
    JWT_SUBJECT_TOKEN_TYPE,
    LEGACY_PREFIX,
    MAX_TEXT,
)
from airflow_provider_gcp_wif.endpoints import (
    BadEndpoint,
    EndpointRefused,
    checked_endpoint,
    deployment_allowed_hosts,
    dns_name,
    listed,
    parse_allowed_hosts,
    parse_endpoint,
)
from airflow_provider_gcp_wif.errors import WifConfigError
from airflow_provider_gcp_wif.excerpts import json_type, shown, shown_url
from airflow_provider_gcp_wif.fields import FEDERATION_ROUTES, MAX_LIFETIME_SECONDS, MAX_RETRIES

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.config import WifSettings

# The warnings name the settings module, as they did when the parser lived there.
log = logging.getLogger("airflow_provider_gcp_wif.config")

_POOL_ID = re.compile(r"^[a-z0-9-]{4,32}$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$")
_PROJECT_ID = re.compile(r"^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_SHORT_SCOPES = {"openid", "email", "profile"}
_SCOPE = re.compile(r"(?i:https)://(?P<host>[A-Za-z0-9.-]{1,253})(?P<path>/[A-Za-z0-9._~/:+-]*)?")
_IMPERSONATION_URL = re.compile(r"^(?P<base>https?://[^/]+)/v1/projects/-/serviceAccounts/(?P<email>[^:/]+):generateAccessToken$")

# Size bounds: a value is refused (with a truncated excerpt) before any regular expression or parser sees more.
MAX_LIST_TEXT = 16384  # impersonation_chain / scope as one comma-separated text
MAX_ITEMS = 64  # impersonation_chain / scope as a list
MAX_CREDENTIAL_CONFIG = 65536  # the credential-config JSON text


_MISSING: Any = object()
_FILE_KEYS = {"sts_endpoint": "token_url", "iam_endpoint": "service_account_impersonation_url"}


class ExtrasParser:
    """Reads, normalises and checks one set of raw settings: :meth:`parse` returns the ``WifSettings`` attributes
    of the steps it runs."""

    def __init__(
        self, raw: Mapping[str, Any], conn_id: str | None, allowed: str | Iterable[str] | None
    ) -> None:
        self.conn_id = conn_id
        if not isinstance(raw, Mapping):
            self.fail("extra", f"must be a JSON object, not {type(raw).__name__}.", "store extras as a JSON object.")
        self.values: dict[str, Any] = {}
        for key, value in raw.items():
            if not isinstance(key, str):
                log.warning("gcp_wif connection %r: extra key %s is not text; ignored.", self.conn_id or "",
                            shown(key))
                continue
            plain = key[len(LEGACY_PREFIX):] if key.startswith(LEGACY_PREFIX) else key
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if plain in self.values and key != plain:
                continue  # the plain key wins over the legacy prefixed one
            self.values[plain] = value
        self._warn_unknown()
        self.allowed = deployment_allowed_hosts() if allowed is None else parse_allowed_hosts(allowed)

    # -- helpers ---------------------------------------------------------------------------------------------

    def fail(self, name: str, problem: str, fix: str) -> NoReturn:
        raise WifConfigError(name, problem, fix, conn_id=self.conn_id)

    def text(self, name: str, limit: int = MAX_TEXT, value: Any = _MISSING, field: str | None = None) -> str | None:
        """A text value (whole numbers are accepted as their digits), stripped and at most ``limit`` long.
        ``value``/``field``: check a value from the credential config instead, blaming ``field`` for it."""
        if value is _MISSING:
            value = self.values.get(name)
        if value is None:
            return None
        blame, what = (field, f"its {name} ") if field else (name, "")
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.fail(blame, f"{what}must be text, not {json_type(value)}.", "store it as a JSON string.")
        if isinstance(value, int):
            if value.bit_length() > 64:
                self.fail(blame, f"{what}is {json_type(value)}, not a setting.", "store it as a JSON string.")
            value = str(value)
        value = value.strip()
        if len(value) > limit:
            self.fail(blame, f"{what}is {len(value)} characters long, more than {limit}: {shown_url(value)}.",
                      "check that the right value was pasted into this field.")
        return value or None

    def _warn_unknown(self) -> None:
        for key in self.values:
            if key not in fields.KEYS:
                close = difflib.get_close_matches(key[:100], fields.KEYS, n=1, cutoff=0.6)
                hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(fields.KEYS)}."
                log.warning(
                    "gcp_wif connection %r: unknown extra %s is ignored.%s", self.conn_id or "", shown(key), hint
                )

    # -- fields ----------------------------------------------------------------------------------------------

    def parse(self, steps: Iterable[str], current: WifSettings | None = None) -> dict[str, Any]:
        """Run the parser ``steps`` (names from :data:`STEPS`, the ``parser`` of a field in
        :mod:`~airflow_provider_gcp_wif.fields`) in :data:`STEPS` order, which is the order errors are reported in;
        returns the ``WifSettings`` attributes they set. Steps left out take their inputs (the federation route, the
        universe) from ``current``."""
        wanted = set(steps)
        unknown = wanted - set(STEPS)
        if unknown:
            raise ValueError(f"unknown parser steps {sorted(unknown)}")
        state = _ParseState(
            from_file={},
            federation=current.federation if current else str(fields.default("federation")),
            universe=current.universe_domain if current else str(fields.default("universe_domain")),
        )
        result: dict[str, Any] = {}
        for name, step in STEPS.items():
            if name in wanted:
                result.update(step(self, state))
            if name == "lifetime" and {"impersonation_chain", "lifetime"} & wanted:
                chain = result.get("impersonation_chain", current.impersonation_chain if current else ())
                lifetime = result.get("lifetime_seconds", current.lifetime_seconds if current else None)
                if lifetime != fields.default("lifetime_seconds") and not chain:
                    log.warning(
                        "gcp_wif connection %r: lifetime_seconds applies to impersonated tokens only; the federated "
                        "token's lifetime is set by Google.",
                        self.conn_id or "",
                    )
        return result

    def aws_conn_id(self) -> str:
        value = self.text("aws_conn_id", limit=250) or fields.default("aws_conn_id")
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            self.fail("aws_conn_id", f"{shown(value)} contains whitespace or control characters.",
                      "name an existing Airflow AWS connection id.")
        return value

    def federation(self) -> str:
        raw = self.values.get("federation")
        if raw is None:
            return str(fields.default("federation"))
        normal = raw.strip().lower() if isinstance(raw, str) else None
        if normal not in FEDERATION_ROUTES:
            self.fail("federation", f"{shown(raw)} is not a federation route.",
                      "use the text sigv4 (the default: a signed GetCallerIdentity request for an AWS provider) or "
                      "jwt (a JWT from AWS STS GetWebIdentityToken for an OIDC provider).")
        assert normal is not None
        return normal

    def credential_config(self, federation: str = "sigv4") -> dict[str, Any]:
        raw = self.values.get("credential_config")
        if raw is None:
            return {}
        name = "credential_config"
        paste = "paste the whole file written by `gcloud iam workload-identity-pools create-cred-config ... --aws`."
        if isinstance(raw, str):
            if len(raw) > MAX_CREDENTIAL_CONFIG:
                self.fail(name, f"is {len(raw)} characters long, more than {MAX_CREDENTIAL_CONFIG}.", paste)
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError as err:
                self.fail(name, f"is not valid JSON ({err.msg} at line {err.lineno}).", paste)
            except (ValueError, RecursionError) as err:  # int-digit limit, nesting deeper than the stack
                self.fail(name, f"is not usable JSON ({type(err).__name__}).", paste)
        if not isinstance(raw, Mapping):
            self.fail(name, f"must be a JSON object, not {json_type(raw)}.", paste)
        if raw.get("type") != "external_account":
            self.fail(name, f"has type {shown(raw.get('type'))}, expected 'external_account'.",
                      "use the file from `gcloud iam workload-identity-pools create-cred-config ... --aws`; a "
                      "service-account key does not belong in a gcp_wif connection.")
        token_type = raw.get("subject_token_type")
        if federation == "jwt":
            if token_type not in (JWT_SUBJECT_TOKEN_TYPE, ID_TOKEN_SUBJECT_TOKEN_TYPE):
                self.fail(name, f"is for subject_token_type {shown(token_type)}, not an OIDC provider's JWT "
                                f"({JWT_SUBJECT_TOKEN_TYPE}), and federation is jwt.",
                          "create the configuration for the pool's OIDC provider (`create-cred-config ... "
                          f"--credential-source-url=... --subject-token-type={JWT_SUBJECT_TOKEN_TYPE}`)"
                          ", or set federation to sigv4 for an AWS provider.")
        elif token_type != AWS_SUBJECT_TOKEN_TYPE:
            self.fail(name, f"is for subject_token_type {shown(token_type)}, not AWS ({AWS_SUBJECT_TOKEN_TYPE}).",
                      "create the configuration with `--aws` for an AWS provider of the pool, or set federation to "
                      "jwt for an OIDC provider trusting the AWS account's issuer.")
        result: dict[str, Any] = {}
        for key, target in (("audience", "audience"), ("token_url", "sts_endpoint"),
                            ("universe_domain", "universe_domain"), ("quota_project_id", "quota_project_id"),
                            ("service_account_impersonation_url", "impersonation_url")):
            value = self.text(key, value=raw.get(key), field=name)
            if value:
                result[target] = value
        url = result.pop("impersonation_url", None)
        if url:
            match = _IMPERSONATION_URL.match(url)
            try:
                parse_endpoint(match.group("base") if match else url)
            except BadEndpoint as why:
                self.fail(name, f"its service_account_impersonation_url {shown_url(url)} {why}.",
                          "re-create the file with --service-account=EMAIL.")
            if not match or not url.isascii() or any(not " " < ch < "\x7f" or ch in "\\?#" for ch in url):
                self.fail(name, f"has a service_account_impersonation_url that is not a generateAccessToken URL: "
                                f"{shown_url(url)}.", "re-create the file with --service-account=EMAIL.")
            result["service_account"] = match.group("email")
            result["iam_endpoint"] = match.group("base")
        options = raw.get("service_account_impersonation")
        if options is not None and not isinstance(options, Mapping):
            self.fail(name, f"its service_account_impersonation must be a JSON object, not {json_type(options)}.",
                      paste)
        if options and options.get("token_lifetime_seconds") is not None:
            result["lifetime_seconds"] = options["token_lifetime_seconds"]
        return result

    def universe_domain(self, from_file: str | None) -> str:
        given = self.text("universe_domain")
        blame = "universe_domain" if given or not from_file else "credential_config"
        raw = given or from_file or DEFAULT_UNIVERSE_DOMAIN
        value = dns_name(raw)
        # An IP address is no domain: the default endpoints (sts.<universe>) would leave the endpoint grammar.
        if value is None or "." not in value or not _HOSTNAME.match(value) or value.rpartition(".")[2].isdigit():
            self.fail(blame, f"{shown_url(raw)} is not a domain name.", "leave it empty for googleapis.com.")
        if value != DEFAULT_UNIVERSE_DOMAIN and not listed(value, self.allowed):
            self.fail(blame, f"{value!r} is not allowed by this deployment.",
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
            self.fail("audience", f"{shown_url(given)} disagrees with the credential_config's audience "
                                  f"{shown_url(from_file)}.", "remove one of them.")
        raw_audience = given or from_file
        if raw_audience:
            audience = _normalise_audience(raw_audience)
            match = resource_names.AUDIENCE.match(audience)
            if not match or match.group("domain") != universe:
                self.fail("audience" if given else "credential_config",
                          f"{shown_url(raw_audience)} is not a workload identity provider's full name.",
                          f"use {resource_names.provider_name('PROJECT_NUMBER', 'POOL_ID', 'PROVIDER_ID', universe)}, "
                          "or set project_number, pool_id and provider_id instead.")
            parts = {"project_number": match.group("number"), "pool_id": match.group("pool"),
                     "provider_id": match.group("provider")}
            self.check_number(parts["project_number"], "audience")
            self.check_pool_id("audience", parts["pool_id"], what="pool id")
            self.check_pool_id("audience", parts["provider_id"], what="provider id")
            for key, value in (("project_number", number), ("pool_id", pool), ("provider_id", provider)):
                if value is not None and value != parts[key]:
                    self.fail(key, f"{shown(value)} disagrees with the audience, which names {shown(parts[key])}.",
                              "set either the audience or project_number/pool_id/provider_id, or make them agree.")
            return audience, parts["project_number"], parts["pool_id"], parts["provider_id"]
        missing = [k for k, v in (("project_number", number), ("pool_id", pool), ("provider_id", provider)) if not v]
        if missing:
            self.fail(missing[0], "is required to name the workload identity provider.",
                      "set project_number, pool_id and provider_id (or audience, or credential_config); "
                      "`gcp-wif setup` prints the commands that create them.")
        assert number and pool and provider
        return resource_names.provider_name(number, pool, provider, universe), number, pool, provider

    def check_number(self, value: str, name: str = "project_number") -> None:
        if not resource_names.PROJECT_NUMBER.fullmatch(value):
            self.fail(name, f"project number {shown(value)} must be digits only (the project NUMBER, not its ID).",
                      "find it with `gcloud projects describe PROJECT_ID --format='value(projectNumber)'`.")

    def check_pool_id(self, name: str, value: str, what: str | None = None) -> None:
        what = what or name.replace("_", " ")
        if not _POOL_ID.match(value):
            self.fail(name, f"{what} {shown(value)} must be 4-32 characters of lowercase letters, digits and "
                            "hyphens.",
                      "copy the id from `gcloud iam workload-identity-pools list --location=global` (pools) or "
                      "`... providers list --workload-identity-pool=POOL_ID --location=global` (providers).")
        if value.startswith("gcp-"):
            self.fail(name, f"{what} {value!r} starts with 'gcp-', which Google reserves.",
                      "use the id of the pool/provider you created.")

    def impersonation_chain(self, from_file: str | None) -> tuple[str, ...]:
        name = "impersonation_chain"
        raw = self.values.get(name)
        if raw is None:
            items: list[Any] = [from_file] if from_file else []
        elif isinstance(raw, str):
            items = (self.text(name, limit=MAX_LIST_TEXT) or "").split(",")
        elif isinstance(raw, list | tuple):
            items = list(raw)
        else:
            self.fail(name, f"must be text or a list, not {json_type(raw)}.",
                      "use service-account emails, comma separated.")
        if len(items) > MAX_ITEMS:
            self.fail(name, f"lists {len(items)} accounts, more than {MAX_ITEMS}.", "list the accounts to chain.")
        chain = []
        for item in items:
            if not isinstance(item, str):
                self.fail(name, f"lists {json_type(item)}, not a service-account email.",
                          "use service-account emails (text), comma separated.")
            email = item.strip()
            if not email:
                continue
            if len(email) > 254 or not _EMAIL.match(email):
                self.fail(name, f"{shown(email)} is not a service-account email.",
                          "use plain emails such as NAME@PROJECT_ID.iam.gserviceaccount.com, comma separated, "
                          "without quotes or spaces; leave it empty for direct resource access.")
            chain.append(email)
        return tuple(chain)

    def project_id(self, name: str, value: Any = _MISSING, field: str | None = None) -> str | None:
        value = self.text(name, value=value, field=field)
        if value is not None and not _PROJECT_ID.match(value):
            self.fail(field or name, f"{f'its {name} ' if field else ''}{shown(value)} is not a Google Cloud "
                                     "project id.",
                      "use the project ID (6-30 lowercase letters, digits, hyphens), e.g. my-project-123.")
        return value

    def scopes(self) -> tuple[str, ...]:
        raw = self.values.get("scope")
        if raw is None:
            return (CLOUD_PLATFORM_SCOPE,)
        if isinstance(raw, list | tuple):
            if len(raw) > MAX_ITEMS:
                self.fail("scope", f"lists {len(raw)} scopes, more than {MAX_ITEMS}.", "list the scopes you need.")
            items = list(raw)
        elif isinstance(raw, str):
            items = re.split(r"[,\s]+", self.text("scope", limit=MAX_LIST_TEXT) or "")
        else:
            self.fail("scope", f"must be text or a list, not {json_type(raw)}.",
                      f"use Google OAuth scopes such as {CLOUD_PLATFORM_SCOPE}, comma separated.")
        for item in items:
            if not isinstance(item, str) or len(item) > MAX_TEXT:
                self.fail("scope", f"lists {shown_url(item)}, not an OAuth scope.",
                          f"use Google OAuth scopes such as {CLOUD_PLATFORM_SCOPE}, comma separated.")
        scopes = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
        if not scopes:
            return (CLOUD_PLATFORM_SCOPE,)
        for scope in scopes:
            if scope in _SHORT_SCOPES:
                continue
            match = _SCOPE.fullmatch(scope)
            host = match["host"].lower() if match else ""
            google = host in ("googleapis.com", "google.com") or host.endswith((".googleapis.com", ".google.com"))
            if not google:
                self.fail("scope", f"{shown_url(scope)} is not an OAuth scope.",
                          f"use Google OAuth scopes such as {CLOUD_PLATFORM_SCOPE}, comma separated (the URL of "
                          "your own service is an ID-token audience, not a scope).")
        return scopes

    def lifetime(self, from_file: Any) -> int:
        raw = self.values.get("lifetime_seconds")
        name = "lifetime_seconds"
        if raw is None:
            raw, name = from_file, "credential_config"
        if raw is None:
            return int(fields.default("lifetime_seconds"))
        if isinstance(raw, bool):
            self.fail(name, "must be a number of seconds, not true/false.", "use e.g. 3600.")
        value = -1
        if isinstance(raw, int):
            value = raw if raw.bit_length() <= 64 else -1
        elif isinstance(raw, float):
            value = int(raw) if math.isfinite(raw) and raw.is_integer() and abs(raw) < 2**63 else -1
        elif isinstance(raw, str):
            match = re.fullmatch(r"([0-9]{1,9})(\.0+)?s?", raw.strip()[:100])
            if match:
                value = int(match.group(1))
        if value == -1:
            self.fail(name, f"{shown(raw)} is not a number of seconds.", "use e.g. 3600 or \"3600s\" (1 to 43200).")
        if not 1 <= value <= MAX_LIFETIME_SECONDS:
            self.fail(name, f"{value} is outside 1-{MAX_LIFETIME_SECONDS} seconds.",
                      "use at most 3600, or up to 43200 where the org policy "
                      "constraints/iam.allowServiceAccountCredentialLifetimeExtension lists the service account.")
        return value

    def region(self) -> str | None:
        value = self.text("aws_region")
        if value is not None and not _REGION.match(value):
            self.fail("aws_region", f"{shown(value)} is not an AWS region.",
                      "use a region code such as us-east-1 or eu-west-2, or leave it empty to use the AWS "
                      "connection's region_name.")
        return value

    def num_retries(self) -> int:
        raw = self.values.get("num_retries")
        if raw is None:
            return int(fields.default("num_retries"))
        value = -1
        if isinstance(raw, int) and not isinstance(raw, bool) and raw.bit_length() <= 64:
            value = raw
        elif isinstance(raw, str) and re.fullmatch(r"[0-9]{1,3}", raw.strip()[:10]):
            value = int(raw.strip())
        if not 0 <= value <= MAX_RETRIES:
            self.fail("num_retries", f"{shown(raw)} is not a whole number from 0 to {MAX_RETRIES}.",
                      f"use e.g. {fields.default('num_retries')} (the default).")
        return value

    def endpoint(self, name: str, from_file: str | None, default: str, universe: str, *, token_url: bool) -> str:
        given = self.text(name)
        raw = given or from_file
        if not raw:
            return default
        blame, what = (name, "") if given else ("credential_config", f"its {_FILE_KEYS[name]} ")
        try:
            base, path = checked_endpoint(raw, allowed=self.allowed, universe=universe)
        except EndpointRefused as refused:
            if refused.kind == "grammar":
                self.fail(blame, f"{what}{refused.reason}.",
                          f"use a plain URL such as {default} (scheme, host, optional port and path only).")
            if refused.kind == "http":
                self.fail(blame, f"{what}{refused.reason}.", "use https.")
            self.fail(blame, f"{what}{refused.reason}; the signed AWS request is a credential and is only sent to "
                             "Google.",
                      f"use Google's endpoint ({default}) or a Private Service Connect name under *.p.{universe}; "
                      f"an Airflow administrator can allow other hosts in [gcp_wif] allowed_endpoint_hosts "
                      f"({ALLOWED_HOSTS_ENV}).")
        if token_url:
            return base + (path or "/v1/token")
        if "/v1/" in path + "/":
            path = path[: (path + "/").index("/v1/")]
        return base + path



@dataclass
class _ParseState:
    """What later parser steps read from earlier ones: the credential config's values, the route, the universe."""

    from_file: dict[str, Any]
    federation: str
    universe: str


def _step_federation(p: ExtrasParser, state: _ParseState) -> dict[str, Any]:
    state.federation = p.federation()
    return {"federation": state.federation}


def _step_credential_config(p: ExtrasParser, state: _ParseState) -> dict[str, Any]:
    state.from_file = p.credential_config(state.federation)
    return {}


def _step_universe_domain(p: ExtrasParser, state: _ParseState) -> dict[str, Any]:
    state.universe = p.universe_domain(state.from_file.get("universe_domain"))
    return {"universe_domain": state.universe}


def _step_audience(p: ExtrasParser, state: _ParseState) -> dict[str, Any]:
    audience, number, pool, provider = p.audience(state.from_file.get("audience"), state.universe)
    return {"audience": audience, "project_number": number, "pool_id": pool, "provider_id": provider}


def _step_sts_endpoint(p: ExtrasParser, state: _ParseState) -> dict[str, Any]:
    u = state.universe
    return {"sts_endpoint": p.endpoint("sts_endpoint", state.from_file.get("sts_endpoint"), f"https://sts.{u}/v1/token",
                                       u, token_url=True)}


def _step_iam_endpoint(p: ExtrasParser, state: _ParseState) -> dict[str, Any]:
    u = state.universe
    return {"iam_endpoint": p.endpoint("iam_endpoint", state.from_file.get("iam_endpoint"),
                                       f"https://iamcredentials.{u}", u, token_url=False)}


def _step_quota_project_id(p: ExtrasParser, state: _ParseState) -> dict[str, Any]:
    from_file = state.from_file.get("quota_project_id")
    return {"quota_project_id": p.project_id("quota_project_id")
            or p.project_id("quota_project_id", from_file, field="credential_config")}


#: The parser steps in the order they run (a field's ``parser`` in :mod:`~airflow_provider_gcp_wif.fields` names
#: one): each reads raw values from the parser and returns the ``WifSettings`` attributes it sets.
STEPS: dict[str, Callable[[ExtrasParser, _ParseState], dict[str, Any]]] = {
    "federation": _step_federation,
    "credential_config": _step_credential_config,
    "universe_domain": _step_universe_domain,
    "audience": _step_audience,
    "impersonation_chain": lambda p, s: {"impersonation_chain": p.impersonation_chain(
        s.from_file.get("service_account"))},
    "lifetime": lambda p, s: {"lifetime_seconds": p.lifetime(s.from_file.get("lifetime_seconds"))},
    "sts_endpoint": _step_sts_endpoint,
    "iam_endpoint": _step_iam_endpoint,
    "aws_conn_id": lambda p, s: {"aws_conn_id": p.aws_conn_id()},
    "project": lambda p, s: {"project": p.project_id("project")},
    "scopes": lambda p, s: {"scopes": p.scopes()},
    "quota_project_id": _step_quota_project_id,
    "region": lambda p, s: {"aws_region": p.region()},
    "num_retries": lambda p, s: {"num_retries": p.num_retries()},
}

def _normalise_audience(value: str) -> str:
    value = value.strip().rstrip("/")
    for prefix in ("https:", "http:"):
        if value.startswith(prefix + "//"):
            return value[len(prefix):]
    return value
