"""Emulated Google Security Token Service: ``POST /v1/token`` (AWS token exchange).

Checks run in this order, each failing with the body ERRORS.md lists for it:
request fields (grant/token types) -> audience format -> scope -> API enabled -> pool/provider -> subject token
JSON -> serialized request shape (URL, method, host, x-amz-date, Authorization, x-goog-cloud-target-resource =
audience; with ``strict``, that header also signed) -> x-amz-date within 15 minutes of the emulator clock ->
replay to emulated AWS (its rejection passed through) -> AWS account -> google.subject size -> attribute
condition -> federated token.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import urllib.parse
from typing import TYPE_CHECKING, Any

from . import api_errors as errors
from .state import fingerprint

if TYPE_CHECKING:
    from .aws import AwsEmulator
    from .state import EmulatorState

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
AWS_SUBJECT_TOKEN_TYPE = "urn:ietf:params:aws:token-type:aws4_request"
IAM_PREFIX = "//iam.googleapis.com/"

_AUDIENCE = re.compile(
    r"^//iam\.googleapis\.com/projects/([^/]+)/locations/([^/]+)/workloadIdentityPools/([^/]+)"
    r"/providers/([^/]+)$"
)
_STS_URL = re.compile(r"^https://(sts(?:\.[a-z0-9-]+)?\.amazonaws\.com)/?\?([^#]*)$")
_SCOPE = re.compile(r"^https://www\.googleapis\.com/auth/[A-Za-z0-9_.\-/]+$")
_ASSUMED_ROLE = re.compile(r"^arn:(aws[\w-]*):sts::(\d{12}):assumed-role/([^/]+)/(.+)$")
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
        for name, expected in (("grant_type", GRANT_TYPE), ("requested_token_type", ACCESS_TOKEN_TYPE),
                               ("subject_token_type", AWS_SUBJECT_TOKEN_TYPE)):
            if fields.get(name) != expected:
                raise errors.oauth_error("invalid_request", f'Invalid value for "{name}".')

        audience = normalize_audience(fields.get("audience", ""))
        if not audience.startswith(IAM_PREFIX):
            raise errors.oauth_error("invalid_request", errors.AUDIENCE_NOT_FULL_RESOURCE_NAME)
        scopes = self._scopes(fields.get("scope", ""))
        if "sts.googleapis.com" in config.get("disabled_services", []):
            raise errors.service_disabled("sts.googleapis.com", "Security Token Service API",
                                          config["project_number"])
        pool_resource, provider = self._provider(config, audience)

        if fields.get("subject_token"):
            self.log["subject_token_fingerprint"] = fingerprint(fields["subject_token"])
        request = self._subject_request(fields.get("subject_token", ""))
        headers = self._check_request_shape(request, audience, provider)
        self._check_date(headers["x-amz-date"])
        arn, account = self._replay(request)
        self.log["aws_arn"] = arn

        if provider.get("aws_account_id") and account != str(provider["aws_account_id"]):
            raise errors.oauth_error("invalid_grant", errors.AWS_ACCOUNT_MISMATCH)
        subject, attributes = map_attributes(arn, account, provider.get("google_subject", "assertion.arn"))
        if len(subject.encode()) > MAX_SUBJECT_BYTES:
            raise errors.oauth_error("invalid_request", errors.SUBJECT_TOO_LONG)
        if not condition_allows(provider.get("attribute_condition"), arn, attributes):
            raise errors.oauth_error("unauthorized_client", errors.ATTRIBUTE_CONDITION_REJECTED)

        principal = f"principal://iam.googleapis.com/{pool_resource}/subject/{subject}"
        members = frozenset({
            principal,
            f"principalSet://iam.googleapis.com/{pool_resource}/attribute.aws_role/{attributes['aws_role']}",
            f"principalSet://iam.googleapis.com/{pool_resource}/attribute.aws_account/{account}",
            f"principalSet://iam.googleapis.com/{pool_resource}/*",
        })
        ttl = int(config["token_ttl"].get("sts") or 3600)
        value, _ = self.state.issue_token("federated", principal, members, scopes, ttl)
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
        project, location, pool_id, provider_id = match.groups()
        pool = config["pools"].get(pool_id)
        provider = (pool or {}).get("providers", {}).get(provider_id)
        if (project != config["project_number"] or location != "global" or pool is None or provider is None
                or pool.get("disabled") or provider.get("disabled")):
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

    def _replay(self, request: dict[str, Any]) -> tuple[str, str]:
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
        return arn, account


def map_attributes(arn: str, account: str, google_subject: str) -> tuple[str, dict[str, str]]:
    """Google's default AWS attribute mapping (plus the emulator's ``google_subject`` switch)."""
    match = _ASSUMED_ROLE.match(arn)
    if match:
        partition, acct, role_name, _session = match.groups()
        aws_role = f"arn:{partition}:sts::{acct}:assumed-role/{role_name}"
    else:
        role_name, aws_role = arn, arn
    subject = {"assertion.arn": arn, "aws_role": aws_role, "role_name": role_name}.get(google_subject, arn)
    return subject, {"aws_role": aws_role, "aws_account": account}


def condition_allows(condition: dict[str, Any] | None, arn: str, attributes: dict[str, str]) -> bool:
    """Declarative stand-in for a CEL attribute condition: every listed key must match."""
    if not condition:
        return True
    checks = (("aws_role_in", attributes["aws_role"]), ("aws_account_in", attributes["aws_account"]),
              ("arn_in", arn))
    return all(value in condition[key] for key, value in checks if condition.get(key) is not None)


def _xml_value(text: str, tag: str) -> str | None:
    match = re.search(rf"<{tag}>(.*?)</{tag}>", text, re.S)
    if not match:
        return None
    value = match.group(1).strip()
    if value.startswith("<![CDATA[") and value.endswith("]]>"):  # older moto wraps messages in CDATA
        return value[len("<![CDATA["):-len("]]>")]
    return html.unescape(value)
