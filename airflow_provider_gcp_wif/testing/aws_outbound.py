"""Emulated AWS IAM outbound identity federation (runs inside the moto child, see :mod:`.aws`).

moto 5.2.5 implements none of it. Added the way :mod:`.aws` adds behaviour, without touching verification:

* IAM ``EnableOutboundWebIdentityFederation`` / ``DisableOutboundWebIdentityFederation`` /
  ``GetOutboundWebIdentityFederationInfo``, per account, with AWS's ``FeatureEnabled`` (409) and
  ``FeatureDisabled`` (404) errors. The account's issuer is ``<moto endpoint>/_issuer/<uuid>`` on loopback, serving
  ``/.well-known/openid-configuration`` and ``/.well-known/jwks.json`` (one RSA key ``RSA_0`` and one P-384 key
  ``EC384_0`` per account, the ids a real AWS issuer publishes).
* STS ``GetWebIdentityToken``: moto's SigV4 check runs as for every action; the permission check is ours, because
  moto evaluates no identity-policy conditions: ``sts:GetWebIdentityToken`` must be allowed (and not denied) by the
  caller's policies with the condition keys ``sts:IdentityTokenAudience`` (multivalued), ``sts:DurationSeconds``,
  ``sts:SigningAlgorithm``, ``aws:RequestTag/<key>``, ``aws:TagKeys``; with ``Tags``, ``sts:TagGetWebIdentityToken``
  too. Then the feature must be enabled
  (``OutboundWebIdentityFederationDisabledException``) and the token must not outlive the calling role session
  (``SessionDurationEscalationException``). Error codes and status codes are botocore's model of the API.
* The JWT carries the claims AWS documents (IAM User Guide, "Understanding token claims").
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import uuid
from typing import Any

from .signing import b64url, b64url_integer

ISSUER_PREFIX = "/_issuer/"
STS_NAMESPACE = "https://sts.amazonaws.com/"
ALGORITHMS = ("RS256", "ES384")
_KID = {"RS256": "RSA_0", "ES384": "EC384_0"}
_STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
_IAM_XMLNS = "https://iam.amazonaws.com/doc/2010-05-08/"

# Messages: the documentation strings of botocore's model for these errors (AWS's own wording of the cause).
FEATURE_DISABLED_STS_MESSAGE = ("The outbound web identity federation feature is not enabled for this account. To use "
                                "this feature, you must first enable it through the AWS Management Console or API.")
SESSION_ESCALATION_MESSAGE = ("The requested token duration would extend the session beyond its original expiration "
                              "time. You cannot use this operation to extend the lifetime of a session beyond what "
                              "was granted when the session was originally created.")
FEATURE_ENABLED_MESSAGE = ("Outbound identity federation is already enabled for your AWS account. To fetch the "
                           "current configuration (including the unique issuer URL), use the "
                           "GetOutboundWebIdentityFederationInfo operation.")
FEATURE_DISABLED_IAM_MESSAGE = "Outbound identity federation is disabled for your AWS account."


class _AccountIssuer:
    def __init__(self, account_id: str) -> None:
        self.account_id = account_id
        self.issuer_id = str(uuid.uuid4())
        self.enabled = False
        self._keys: dict[str, Any] = {}
        self._lock = threading.Lock()

    def key(self, algorithm: str) -> Any:
        with self._lock:
            if algorithm not in self._keys:
                from cryptography.hazmat.primitives.asymmetric import ec, rsa

                self._keys[algorithm] = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
                                         if algorithm == "RS256" else ec.generate_private_key(ec.SECP384R1()))
            return self._keys[algorithm]

    def jwks(self) -> dict[str, Any]:
        rsa_numbers = self.key("RS256").public_key().public_numbers()
        ec_numbers = self.key("ES384").public_key().public_numbers()
        return {"keys": [
            {"e": b64url_integer(rsa_numbers.e), "kid": _KID["RS256"], "kty": "RSA",
             "n": b64url_integer(rsa_numbers.n), "use": "sig"},
            {"alg": "ES384", "crv": "P-384", "kid": _KID["ES384"], "kty": "EC", "use": "sig",
             "x": b64url_integer(ec_numbers.x, 48), "y": b64url_integer(ec_numbers.y, 48)},
        ]}

    def sign(self, algorithm: str, claims: dict[str, Any]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        header = {"alg": algorithm, "kid": _KID[algorithm], "typ": "JWT"}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        key = self.key(algorithm)
        if algorithm == "RS256":
            signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA384())))
            signature = r.to_bytes(48, "big") + s.to_bytes(48, "big")
        return signing_input + "." + b64url(signature)


class OutboundFederation:
    """Per-account feature state and issuers of the moto child."""

    def __init__(self) -> None:
        self.base_url = ""
        # the Google emulator's clock offset, so that JWTs are issued on the one emulated clock (moto's sessions
        # keep real time: the session-duration check compares in moto's frame)
        self.clock_offset = 0.0
        self._accounts: dict[str, _AccountIssuer] = {}
        self._lock = threading.Lock()

    def account(self, account_id: str) -> _AccountIssuer:
        with self._lock:
            if account_id not in self._accounts:
                self._accounts[account_id] = _AccountIssuer(account_id)
            return self._accounts[account_id]

    def issuer_url(self, account_id: str) -> str:
        return f"{self.base_url}{ISSUER_PREFIX}{self.account(account_id).issuer_id}"

    def set_enabled(self, account_id: str, enabled: bool) -> None:
        self.account(account_id).enabled = enabled

    def by_issuer_id(self, issuer_id: str) -> _AccountIssuer | None:
        with self._lock:
            return next((a for a in self._accounts.values() if a.issuer_id == issuer_id), None)

    # -- the issuer's public documents -------------------------------------------------------------------
    def serve_issuer(self, path: str) -> tuple[int, dict[str, Any] | None]:
        issuer_id, _, rest = path[len(ISSUER_PREFIX):].partition("/")
        account = self.by_issuer_id(issuer_id)
        if account is None:
            return 404, None
        issuer = self.issuer_url(account.account_id)
        if rest == ".well-known/openid-configuration":
            return 200, {
                "claims_supported": ["sub", "iss", "aud", "exp", "iat", "jti", STS_NAMESPACE],
                "id_token_signing_alg_values_supported": list(ALGORITHMS),
                "issuer": issuer,
                "jwks_uri": f"{issuer}/.well-known/jwks.json",
                "subject_types_supported": ["public"],
            }
        if rest == ".well-known/jwks.json":
            return 200, account.jwks()
        return 404, None


FEDERATION = OutboundFederation()


# ------------------------------------------------------------------------------------------------------------
# Responses (hand-written XML: works with every moto 5.x, whatever its serializer knows)
# ------------------------------------------------------------------------------------------------------------
def _error(xmlns: str, status: int, code: str, message: str) -> tuple[str, dict[str, Any]]:
    from xml.sax.saxutils import escape

    body = (f'<ErrorResponse xmlns="{xmlns}"><Error><Type>Sender</Type><Code>{escape(code)}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return body, {"status": status, "Content-Type": "text/xml"}


def _result(xmlns: str, action: str, inner: str) -> str:
    return (f'<{action}Response xmlns="{xmlns}"><{action}Result>{inner}</{action}Result>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>")


def _params(querystring: Any) -> dict[str, str]:
    """moto's ``querystring`` (``{name: [value]}``) as ``{name: value}``."""
    out: dict[str, str] = {}
    for key, value in (querystring or {}).items():
        if isinstance(value, list):
            out[key] = str(value[0]) if value else ""
        else:
            out[key] = str(value)
    return out


def _members(params: dict[str, str], prefix: str) -> list[str]:
    found = []
    for key, value in params.items():
        match = re.fullmatch(re.escape(prefix) + r"\.member\.(\d+)", key)
        if match:
            found.append((int(match.group(1)), value))
    return [value for _, value in sorted(found)]


def _tags(params: dict[str, str]) -> list[tuple[str, str]]:
    tags = []
    index = 1
    while f"Tags.member.{index}.Key" in params:
        tags.append((params[f"Tags.member.{index}.Key"], params.get(f"Tags.member.{index}.Value", "")))
        index += 1
    return tags


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- IAM ----------------------------------------------------------------------------------------------------
def enable_outbound_web_identity_federation(self: Any) -> Any:
    account = FEDERATION.account(self.current_account)
    if account.enabled:
        return _error(_IAM_XMLNS, 409, "FeatureEnabled", FEATURE_ENABLED_MESSAGE)
    account.enabled = True
    issuer = FEDERATION.issuer_url(self.current_account)
    return _result(_IAM_XMLNS, "EnableOutboundWebIdentityFederation", f"<IssuerIdentifier>{issuer}</IssuerIdentifier>")


def disable_outbound_web_identity_federation(self: Any) -> Any:
    account = FEDERATION.account(self.current_account)
    if not account.enabled:
        return _error(_IAM_XMLNS, 404, "FeatureDisabled", FEATURE_DISABLED_IAM_MESSAGE)
    account.enabled = False
    return (f'<DisableOutboundWebIdentityFederationResponse xmlns="{_IAM_XMLNS}"><ResponseMetadata><RequestId>'
            f"{uuid.uuid4()}</RequestId></ResponseMetadata></DisableOutboundWebIdentityFederationResponse>")


def get_outbound_web_identity_federation_info(self: Any) -> Any:
    account = FEDERATION.account(self.current_account)
    if not account.enabled:
        return _error(_IAM_XMLNS, 404, "FeatureDisabled", FEATURE_DISABLED_IAM_MESSAGE)
    issuer = FEDERATION.issuer_url(self.current_account)
    return _result(_IAM_XMLNS, "GetOutboundWebIdentityFederationInfo",
                   f"<IssuerIdentifier>{issuer}</IssuerIdentifier><JwtVendingEnabled>true</JwtVendingEnabled>")


# -- STS ----------------------------------------------------------------------------------------------------
def request_values(params: dict[str, str]) -> tuple[list[str], str, int, list[tuple[str, str]]]:
    duration = params.get("DurationSeconds")
    return (_members(params, "Audience"), params.get("SigningAlgorithm", ""),
            int(duration) if duration and duration.lstrip("-").isdigit() else 300, _tags(params))


def validation_error(params: dict[str, str]) -> str | None:
    """AWS's ``ValidationError`` message for a malformed request (checked before permissions, as AWS does)."""
    audiences, algorithm, duration, tags = request_values(params)
    prefix = "1 validation error detected: "
    if not audiences:
        return prefix + "Value null at 'audience' failed to satisfy constraint: Member must not be null"
    if len(audiences) > 10:
        return (prefix + f"Value '{audiences}' at 'audience' failed to satisfy constraint: Member must have "
                "length less than or equal to 10")
    for audience in audiences:
        if not 1 <= len(audience) <= 1000:
            return (prefix + f"Value '{audience}' at 'audience' failed to satisfy constraint: Member must have "
                    "length less than or equal to 1000")
    if algorithm not in ALGORITHMS:
        return (prefix + f"Value '{algorithm or 'null'}' at 'signingAlgorithm' failed to satisfy constraint: "
                "Member must satisfy enum value set: [RS256, ES384]")
    if not 60 <= duration <= 3600:
        bound = "greater than or equal to 60" if duration < 60 else "less than or equal to 3600"
        return (prefix + f"Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must "
                f"have value {bound}")
    if len(tags) > 50:
        return prefix + "Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50"
    return None


def http_error(status: int, code: str, message: str) -> Exception:
    """An error moto's auth phase passes through as AWS's XML error (``RESTError`` of any moto 5.x)."""
    from moto.core import exceptions

    base = getattr(exceptions, "RESTError", None) or exceptions._RESTError

    class OutboundFederationError(base):  # type: ignore[misc, valid-type]
        pass

    error = OutboundFederationError(code, message)
    error.code = status
    return error


def get_web_identity_token(self: Any) -> Any:
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    params = _params(self.querystring)
    message = validation_error(params)
    if message:
        return _error(_STS_XMLNS, 400, "ValidationError", message)
    audiences, algorithm, duration, tags = request_values(params)

    account_id = self.current_account
    partition = getattr(self, "partition", "aws")
    account = FEDERATION.account(account_id)
    if not account.enabled:
        return _error(_STS_XMLNS, 403, "OutboundWebIdentityFederationDisabledException", FEATURE_DISABLED_STS_MESSAGE)

    access_key_id = self.get_access_key()
    real_now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    offset = dt.timedelta(seconds=FEDERATION.clock_offset)
    now = real_now + offset  # the emulated clock
    expiration = now + dt.timedelta(seconds=duration)
    namespace: dict[str, Any] = {"aws_account": account_id, "source_region": self.region}
    assumed = sts_backends[account_id][partition].get_assumed_role_from_access_key(access_key_id)
    iam = iam_backends[account_id][partition]
    tags_of_principal: dict[str, str] = {}
    if assumed is not None:
        role_name = assumed.role_arn.split("/")[-1]
        try:
            role = iam.get_role(role_name)
            subject = role.arn
            tags_of_principal = {t["Key"]: t["Value"] for t in (role.get_tags() if hasattr(role, "get_tags")
                                                                   else [])}
        except Exception:  # noqa: BLE001 - a role assumed in moto need not exist
            subject = assumed.role_arn
        session_expiration = assumed.expiration
        if session_expiration.tzinfo is None:
            session_expiration = session_expiration.replace(tzinfo=dt.timezone.utc)
        if real_now + dt.timedelta(seconds=duration) > session_expiration:
            return _error(_STS_XMLNS, 403, "SessionDurationEscalationException", SESSION_ESCALATION_MESSAGE)
        namespace["original_session_exp"] = (session_expiration + offset).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        user = iam.get_user_from_access_key_id(access_key_id)
        if user is None:
            return _error(_STS_XMLNS, 403, "InvalidClientTokenId",
                          "The security token included in the request is invalid.")
        subject = user.arn
        tags_of_principal = {k: v["Value"] if isinstance(v, dict) else v
                             for k, v in (getattr(user, "tags", {}) or {}).items()}
    namespace["principal_id"] = subject
    if tags_of_principal:
        namespace["principal_tags"] = tags_of_principal
    if tags:
        namespace["request_tags"] = dict(tags)
    claims = {
        "iss": FEDERATION.issuer_url(account_id),
        "aud": audiences[0] if len(audiences) == 1 else audiences,
        "sub": subject,
        "iat": int(now.timestamp()),
        "exp": int(expiration.timestamp()),
        "jti": str(uuid.uuid4()),
        STS_NAMESPACE: namespace,
    }
    token = account.sign(algorithm, claims)
    return _result(_STS_XMLNS, "GetWebIdentityToken",
                   f"<WebIdentityToken>{token}</WebIdentityToken><Expiration>{_iso(expiration)}</Expiration>")


# ------------------------------------------------------------------------------------------------------------
# Permission check with the condition keys of GetWebIdentityToken
# ------------------------------------------------------------------------------------------------------------
MULTIVALUED_KEYS = frozenset({"sts:identitytokenaudience", "aws:tagkeys"})


def condition_context(params: dict[str, str]) -> dict[str, list[str]]:
    audiences, algorithm, duration, tags = request_values(params)
    context: dict[str, list[str]] = {
        "sts:identitytokenaudience": audiences,
        "sts:durationseconds": [str(duration)],
        "sts:signingalgorithm": [algorithm] if algorithm else [],
        "aws:tagkeys": [key for key, _ in tags],
    }
    for key, value in tags:
        context[f"aws:requesttag/{key.lower()}"] = [value]
    return context


def _compare(operator: str, expected: str, actual: str) -> bool:
    base = operator
    if base in ("StringEquals", "ArnEquals"):
        return actual == expected
    if base == "StringNotEquals":
        return actual != expected
    if base == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if base in ("StringLike", "ArnLike"):
        return re.fullmatch(re.escape(expected).replace(r"\*", ".*").replace(r"\?", "."), actual) is not None
    if base == "StringNotLike":
        return re.fullmatch(re.escape(expected).replace(r"\*", ".*").replace(r"\?", "."), actual) is None
    if base.startswith("Numeric"):
        try:
            a, e = float(actual), float(expected)
        except ValueError:
            return False
        return {"NumericEquals": a == e, "NumericNotEquals": a != e, "NumericLessThan": a < e,
                "NumericLessThanEquals": a <= e, "NumericGreaterThan": a > e,
                "NumericGreaterThanEquals": a >= e}.get(base, False)
    return False


def _condition_holds(operator: str, key: str, expected: Any, context: dict[str, list[str]]) -> bool:
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    op = op[: -len("IfExists")] if if_exists else op
    expected_values = [str(v) for v in (expected if isinstance(expected, list) else [expected])]
    actual = context.get(key.lower())
    negated = op.startswith(("StringNot", "NumericNot")) or op == "StringNotLike"
    if op == "Null":
        present = bool(actual)
        return all((str(v).lower() == "true") != present for v in expected_values)
    if qualifier == "ForAllValues":
        return all(any(_compare(op, e, a) for e in expected_values) for a in (actual or []))
    if qualifier == "ForAnyValue":
        return any(any(_compare(op, e, a) for e in expected_values) for a in (actual or []))
    if not actual:
        return if_exists or False
    if key.lower() in MULTIVALUED_KEYS:
        return False  # a single-valued operator on a multivalued key never matches (AWS: use ForAllValues)
    value = actual[0]
    if negated:
        return all(_compare(op, e, value) for e in expected_values)
    return any(_compare(op, e, value) for e in expected_values)


def _matches(patterns: Any, value: str) -> bool:
    for pattern in patterns if isinstance(patterns, list) else [patterns]:
        regex = re.escape(str(pattern)).replace(r"\*", ".*").replace(r"\?", ".")
        if re.fullmatch(regex, value, flags=re.IGNORECASE):
            return True
    return False


def evaluate(policy_documents: list[dict[str, Any]], action: str, context: dict[str, list[str]]) -> str:
    """AWS's identity-policy logic for one action on ``*``: ``"deny"`` (an explicit Deny applies), ``"allow"``
    (an Allow applies and no Deny), or ``"implicit"`` (nothing allows it)."""
    allowed = False
    for document in policy_documents:
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if "NotAction" in statement:
                if _matches(statement["NotAction"], action):
                    continue
            elif not _matches(statement.get("Action", []), action):
                continue
            if "Resource" in statement and not _matches(statement["Resource"], "*"):
                continue
            conditions = statement.get("Condition", {}) or {}
            if not all(_condition_holds(operator, key, expected, context)
                       for operator, pairs in conditions.items() for key, expected in pairs.items()):
                continue
            if statement.get("Effect") == "Deny":
                return "deny"
            allowed = True
    return "allow" if allowed else "implicit"


def access_denied_message(principal_arn: str, action: str, verdict: str) -> str:
    """AWS's AccessDenied wording, with the reason it has given since 2021."""
    reason = ("with an explicit deny in an identity-based policy" if verdict == "deny"
              else f"because no identity-based policy allows the {action} action")
    return f"User: {principal_arn} is not authorized to perform: {action} {reason}"


def policy_json(policy: Any) -> dict[str, Any]:
    """A policy as moto's ``collect_policies`` gives it, as JSON (what moto's ``IAMPolicy`` does)."""
    from moto.iam.access_control import IAMPolicy

    return IAMPolicy(policy)._policy_json
