"""Emulated Google Security Token Service: ``POST /v1/token`` (AWS token exchange).

Checks run in this order, each failing with the body ERRORS.md lists for it:
request fields (grant/token types) -> audience format -> scope -> API enabled -> pool/provider -> subject token
JSON -> serialized request shape (URL, method, host, x-amz-date, Authorization, x-goog-cloud-target-resource =
audience; with ``strict``, that header also signed) -> x-amz-date within 15 minutes of the emulator clock ->
replay to emulated AWS (its rejection passed through) -> AWS account -> attribute mapping (CEL, Google's default
AWS mapping when the provider has none) -> google.subject size -> attribute condition (CEL) -> federated token,
whose IAM members are the mapped subject, one ``principalSet`` per mapped attribute value and the pool's ``*``.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import api_errors as errors
from . import cel, oidc
from .state import fingerprint

if TYPE_CHECKING:
    from .aws import AwsEmulator
    from .state import EmulatorState

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
AWS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"

_AUDIENCE = re.compile(
    r"^//iam\.(?P<universe>[a-z0-9.-]+)/projects/([^/]+)/locations/([^/]+)/workloadIdentityPools/([^/]+)"
    r"/providers/([^/]+)$"
)
# Regional AWS STS hosts of every partition: aws and aws-us-gov (sts.<region>.amazonaws.com) and aws-cn
# (sts.cn-north-1.amazonaws.com.cn, sts.cn-northwest-1.amazonaws.com.cn).
_STS_URL = re.compile(
    r"^https://(sts(?:\.[a-z0-9-]+)?\.amazonaws\.com|sts\.cn-[a-z]+-[0-9]+\.amazonaws\.com\.cn)/?\?([^#]*)$"
)
_SCOPE = re.compile(r"^https://www\.googleapis\.com/auth/[A-Za-z0-9_.\-/]+$")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
MAX_SKEW_SECONDS = 15 * 60
MAX_SUBJECT_BYTES = 127

_FIELD_ALIASES = {
    "grant_type": "grantType", "requested_token_type": "requestedTokenType", "subject_token": "subjectToken",
    "subject_token_type": "subjectTokenType", "audience": "audience", "scope": "scope", "options": "options",
}


def normalize_audience(value: str) -> str:
    """``https://iam.googleapis.com/...`` and ``//iam.googleapis.com/...`` name the same provider."""
    return value[len("https:"):] if value.startswith("https://") else value


def read_fields(content_type: str, body: bytes) -> dict[str, str]:
    """Form-encoded or JSON body, snake_case or camelCase keys."""
    raw: dict[str, Any]
    if "json" in content_type:
        try:
            raw = json.loads(body or b"{}")
        except ValueError:
            raise errors.oauth_error("invalid_request", "Invalid JSON payload received.") from None
        if not isinstance(raw, dict):
            raise errors.oauth_error("invalid_request", "Invalid JSON payload received.")
        if isinstance(raw.get("scope"), list):
            raw["scope"] = " ".join(str(s) for s in raw["scope"])
    else:
        raw = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    fields = {}
    for name, alias in _FIELD_ALIASES.items():
        value = raw.get(name, raw.get(alias))
        if value is not None:
            fields[name] = str(value)
    return fields


class TokenExchange:
    """One ``POST /v1/token`` call."""

    def __init__(self, state: EmulatorState, aws: AwsEmulator | None, log: dict[str, Any]) -> None:
        self.state = state
        self.aws = aws
        self.log = log  # request-log fields this handler fills in (principal, token_fingerprint)

    def handle(self, content_type: str, body: bytes) -> dict[str, Any]:
        config = self.state.snapshot()
        fields = read_fields(content_type, body)
        for name, expected in (("grant_type", {GRANT_TYPE}), ("requested_token_type", {ACCESS_TOKEN_TYPE}),
                               ("subject_token_type", {AWS_SUBJECT_TOKEN_TYPE, *oidc.OIDC_SUBJECT_TOKEN_TYPES})):
            if fields.get(name) not in expected:
                raise errors.oauth_error("invalid_request", f'Invalid value for "{name}".')

        audience = normalize_audience(fields.get("audience", ""))
        universe = config.get("universe_domain") or "googleapis.com"
        if not audience.startswith(f"//iam.{universe}/"):
            raise errors.oauth_error("invalid_request", errors.AUDIENCE_NOT_FULL_RESOURCE_NAME)
        scopes = self._scopes(fields.get("scope", ""))
        if "sts.googleapis.com" in config.get("disabled_services", []):
            raise errors.service_disabled("sts.googleapis.com", "Security Token Service API",
                                          config["project_number"])
        pool_resource, provider = self._provider(config, audience)

        if fields.get("subject_token"):
            self.log["subject_token_fingerprint"] = fingerprint(fields["subject_token"])
        if provider.get("oidc") or fields["subject_token_type"] != AWS_SUBJECT_TOKEN_TYPE:
            return self._oidc_exchange(config, fields, audience, pool_resource, provider, scopes, universe)
        request = self._subject_request(fields.get("subject_token", ""))
        headers = self._check_request_shape(request, audience, provider)
        self._check_date(headers["x-amz-date"])
        arn, account, userid = self._replay(request)
        self.log["aws_arn"] = arn

        if provider.get("aws_account_id") and account != str(provider["aws_account_id"]):
            raise errors.oauth_error("invalid_grant", errors.AWS_ACCOUNT_MISMATCH)
        assertion = {"arn": arn, "account": account, "userid": userid}
        condition = provider.get("attribute_condition")
        subject, attributes, groups = admitted_principal(
            provider_mapping(provider), assertion, functools.partial(condition_allows, condition, assertion))
        return self._issue(config, universe, pool_resource, subject, attributes, groups, scopes)

    def _oidc_exchange(self, config: dict[str, Any], fields: dict[str, str], audience: str, pool_resource: str,
                       provider: dict[str, Any], scopes: tuple[str, ...], universe: str) -> dict[str, Any]:
        """A JWT subject token for an OIDC provider (see :mod:`.oidc`)."""
        oidc_config = provider.get("oidc")
        if not oidc_config or fields["subject_token_type"] not in oidc.OIDC_SUBJECT_TOKEN_TYPES:
            raise errors.oauth_error("invalid_request", 'Invalid value for "subject_token_type".')
        provider_id = audience.rsplit("/", 1)[1]
        now = self.state.now()
        claims = oidc.verify(fields.get("subject_token", ""), oidc_config,
                             oidc.default_audience(pool_resource, provider_id, universe), now)
        self.log["oidc_sub"] = claims.get("sub")
        mapping = provider.get("attribute_mapping") or oidc.DEFAULT_MAPPING
        condition = provider.get("attribute_condition")

        def admits(subject: str, attributes: dict[str, Any], groups: list[str]) -> bool:
            # a CEL condition only: the declarative form describes AWS assertions
            return not condition or (isinstance(condition, str)
                                     and cel.condition_holds(condition, claims, subject, attributes, groups))

        subject, attributes, groups = admitted_principal(dict(mapping), claims, admits)
        # measured on real Google: expires_in = min(exp - now, 3600)
        ttl_cap = max(1, int(float(claims["exp"]) - now))
        return self._issue(config, universe, pool_resource, subject, attributes, groups, scopes, ttl_cap)

    def _issue(self, config: dict[str, Any], universe: str, pool_resource: str, subject: str,
               attributes: dict[str, Any], groups: list[str], scopes: tuple[str, ...],
               ttl_cap: int | None = None) -> dict[str, Any]:
        iam = f"iam.{universe}"
        principal = f"principal://{iam}/{pool_resource}/subject/{subject}"
        members = {principal, f"principalSet://{iam}/{pool_resource}/*"}
        for name, value in attributes.items():
            for item in value if isinstance(value, list) else [value]:
                members.add(f"principalSet://{iam}/{pool_resource}/attribute.{name}/{item}")
        members.update(f"principalSet://{iam}/{pool_resource}/group/{group}" for group in groups)
        ttl = int(config["token_ttl"].get("sts") or 3600)
        if ttl_cap is not None:
            ttl = min(ttl, ttl_cap)
        value, _ = self.state.issue_token("federated", principal, frozenset(members), scopes, ttl)
        self.log["principal"] = principal
        self.log["token_fingerprint"] = fingerprint(value)
        return {"access_token": value, "issued_token_type": ACCESS_TOKEN_TYPE, "token_type": "Bearer",
                "expires_in": ttl}

    # -- steps ---------------------------------------------------------------------------------------------
    @staticmethod
    def _scopes(scope_field: str) -> tuple[str, ...]:
        scopes = tuple(scope_field.split())
        if not scopes or not all(_SCOPE.match(s) or s in ("openid", "email", "profile") for s in scopes):
            raise errors.oauth_error("invalid_scope", errors.INVALID_SCOPE)
        return scopes

    @staticmethod
    def _provider(config: dict[str, Any], audience: str) -> tuple[str, dict[str, Any]]:
        match = _AUDIENCE.match(audience)
        if not match:
            raise errors.oauth_error("invalid_target", errors.INVALID_TARGET)
        _universe, project, location, pool_id, provider_id = match.groups()
        pool = config["pools"].get(pool_id)
        provider = (pool or {}).get("providers", {}).get(provider_id)
        if (project != config["project_number"] or location != "global" or pool is None or provider is None
                or pool.get("disabled") or provider.get("disabled") or pool.get("deleted")
                or provider.get("deleted")):
            raise errors.oauth_error("invalid_target", errors.INVALID_TARGET)
        return f"projects/{project}/locations/global/workloadIdentityPools/{pool_id}", provider

    @staticmethod
    def _subject_request(subject_token: str) -> dict[str, Any]:
        try:
            request = json.loads(urllib.parse.unquote(subject_token))
        except ValueError:
            raise errors.oauth_error("invalid_request", errors.SUBJECT_TOKEN_UNPARSEABLE) from None
        if not isinstance(request, dict):
            raise errors.oauth_error("invalid_grant", errors.AWS_REQUEST_INVALID_FORMAT)
        return request

    def _check_request_shape(self, request: dict[str, Any], audience: str, provider: dict[str, Any]
                             ) -> dict[str, str]:
        invalid = errors.oauth_error("invalid_grant", errors.AWS_REQUEST_INVALID_FORMAT)
        url, method, header_list = request.get("url"), request.get("method"), request.get("headers")
        if not isinstance(url, str) or method != "POST" or not isinstance(header_list, list):
            raise invalid
        match = _STS_URL.match(url)
        if not match or dict(urllib.parse.parse_qsl(match.group(2), keep_blank_values=True)) != {
                "Action": "GetCallerIdentity", "Version": "2011-06-15"}:
            raise invalid
        headers: dict[str, str] = {}
        for item in header_list:
            if not (isinstance(item, dict) and isinstance(item.get("key"), str)
                    and isinstance(item.get("value"), str)) or item["key"].lower() in headers:
                raise invalid
            headers[item["key"].lower()] = item["value"]
        authorization = headers.get("authorization", "")
        if (headers.get("host") != match.group(1) or "x-amz-date" not in headers
                or not authorization.startswith("AWS4-HMAC-SHA256 ")):
            raise invalid
        target = headers.get("x-goog-cloud-target-resource")
        if target is None or normalize_audience(target) != audience:
            raise invalid
        if provider.get("strict"):
            signed = authorization.partition("SignedHeaders=")[2].partition(",")[0].split(";")
            if "x-goog-cloud-target-resource" not in signed:
                raise invalid
        return headers

    def _check_date(self, amz_date: str) -> None:
        try:
            signed_at = dt.datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=dt.timezone.utc).timestamp()
        except ValueError:
            raise errors.oauth_error("invalid_grant", errors.AWS_REQUEST_INVALID_FORMAT) from None
        now = self.state.now()

        def fmt(epoch: float) -> str:
            return dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc).strftime(_AMZ_DATE)

        if signed_at < now - MAX_SKEW_SECONDS:
            raise errors.aws_rejection("SignatureDoesNotMatch", f"Signature expired: {amz_date} is now earlier "
                                       f"than {fmt(now - MAX_SKEW_SECONDS)} ({fmt(now)} - 15 min.)")
        if signed_at > now + MAX_SKEW_SECONDS:
            raise errors.aws_rejection("SignatureDoesNotMatch", f"Signature not yet current: {amz_date} is still "
                                       f"later than {fmt(now + MAX_SKEW_SECONDS)} ({fmt(now)} + 15 min.)")

    def _replay(self, request: dict[str, Any]) -> tuple[str, str, str]:
        if self.aws is None:
            raise errors.internal_error()
        headers = [(item["key"], item["value"]) for item in request["headers"]]
        try:
            status, body = self.aws.replay(request["method"], request["url"], headers)
        except OSError:
            raise errors.internal_error() from None
        text = body.decode("utf-8", "replace")
        if status != 200:
            code, message = _xml_value(text, "Code"), _xml_value(text, "Message")
            if not code:
                raise errors.internal_error()
            raise errors.aws_rejection(code, message or "")
        arn, account = _xml_value(text, "Arn"), _xml_value(text, "Account")
        if not arn or not account:
            raise errors.internal_error()
        return arn, account, _xml_value(text, "UserId") or ""


_LEGACY_SUBJECTS = {
    "assertion.arn": "assertion.arn",
    "aws_role": cel.AWS_ROLE_DEFAULT,
    "role_name": "assertion.arn.extract('assumed-role/{role_name}/')",
}


#: (google.subject, attributes, groups) of a verified assertion
MappedPrincipal = tuple[str, dict[str, Any], list[str]]


def provider_mapping(provider: dict[str, Any]) -> dict[str, str] | None:
    """The provider's attribute mapping (``None``: Google's default AWS mapping). The older ``google_subject``
    switch of the emulator's configuration is kept as a shorthand for a custom ``google.subject``."""
    mapping = provider.get("attribute_mapping")
    if mapping:
        return dict(mapping)
    subject = provider.get("google_subject", "assertion.arn")
    if subject == "assertion.arn":
        return None
    return {**cel.AWS_DEFAULT_MAPPING, "google.subject": _LEGACY_SUBJECTS[subject]}


def admitted_principal(mapping: Mapping[str, str] | None, assertion: Mapping[str, Any],
                       admits: Callable[[str, dict[str, Any], list[str]], bool]) -> MappedPrincipal:
    """What Google does with a verified assertion, for AWS and OIDC providers alike: the attribute mapping, the
    subject's size limit, then the attribute condition (``admits(subject, attributes, groups)``). The mapped
    ``(subject, attributes, groups)``, or the OAuth error Google answers at the first step that fails."""
    try:
        subject, attributes, groups = cel.map_assertion(mapping, assertion)
    except cel.CelError as error:
        raise errors.oauth_error("invalid_request", f"{errors.ATTRIBUTE_MAPPING_FAILED} {error}") from None
    if len(subject.encode()) > MAX_SUBJECT_BYTES:
        raise errors.oauth_error("invalid_request", errors.SUBJECT_TOO_LONG)
    if not admits(subject, attributes, groups):
        raise errors.oauth_error("unauthorized_client", errors.ATTRIBUTE_CONDITION_REJECTED)
    return subject, attributes, groups


def condition_allows(condition: str | dict[str, Any] | None, assertion: dict[str, str], subject: str,
                     attributes: dict[str, Any], groups: list[str]) -> bool:
    """A CEL attribute condition, evaluated as Google does (see :mod:`.cel`); the older declarative form
    (``{"aws_role_in": [...], "aws_account_in": [...], "arn_in": [...]}``: every listed key must match) is kept."""
    if not condition:
        return True
    if isinstance(condition, str):
        return cel.condition_holds(condition, assertion, subject, attributes, groups)
    checks = (("aws_role_in", attributes.get("aws_role")), ("aws_account_in", assertion["account"]),
              ("arn_in", assertion["arn"]))
    return all(value in condition[key] for key, value in checks if condition.get(key) is not None)


def _xml_value(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    if not match:
        return None
    value = match.group(1).strip()
    if value.startswith("<![CDATA[") and value.endswith("]]>"):  # older moto wraps messages in CDATA
        return value[len("<![CDATA["):-len("]]>")]
    return html.unescape(value)
