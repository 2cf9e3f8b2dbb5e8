"""Where secrets minted or read by the core are announced, so that a host (Airflow's secrets masker) can redact them.

The core imports no Airflow: :mod:`airflow_provider_gcp_wif.extension` registers Airflow's ``mask_secret`` here.

:func:`redact_google_auth_logs` covers what announcing cannot: google-auth's own request/response logging
(recent google-auth releases, not 2.34 and older; switched on by ``GOOGLE_SDK_PYTHON_LOGGING_SCOPE`` or by
configuring the ``google`` logger) writes the subject token, the federated token in an ``Authorization`` header and
the minted tokens of the answers as structured fields of its records, sometimes to its own handler that no host
masker sees, and a response is logged before the caller holds the token it carries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_listeners: list[Callable[[str], None]] = []
# Digests of values already announced: a masker's add_mask is not free, and the same AWS secret is read on every
# exchange. Only digests are kept, never the values.
_announced: set[bytes] = set()


def add_listener(listener: Callable[[str], None]) -> None:
    """Call ``listener(value)`` for every secret value from now on (idempotent per listener)."""
    if listener not in _listeners:
        _listeners.append(listener)
        _announced.clear()  # the new listener has not heard of anything yet


def announce(*values: str | None) -> None:
    """Tell every listener about these secret values (empty ones are skipped)."""
    for value in values:
        if not value:
            continue
        digest = hashlib.sha256(value.encode()).digest()
        if digest in _announced:
            continue
        if len(_announced) > 10_000:  # a process that lives for years: forget, and re-announce, once in a while
            _announced.clear()
        _announced.add(digest)
        for listener in _listeners:
            try:
                listener(value)
            except Exception:
                log.debug("gcp_wif: a secret listener failed", exc_info=True)


#: The loggers google-auth's transports log requests and responses with (``google.auth._helpers.request_log``).
GOOGLE_AUTH_TRANSPORT_LOGGERS = (
    "google.auth.transport.requests",
    "google.auth.transport.urllib3",
    "google.auth.transport._http_client",
    "google.auth.transport._aiohttp_requests",
    "google.auth.aio.transport.aiohttp",
    "google.auth.aio._helpers",
)
#: Header and body fields whose values are credentials (compared case-insensitively).
SECRET_FIELDS = frozenset({
    "authorization", "proxy-authorization", "x-goog-iam-authorization-token", "x-amz-security-token",
    "access_token", "accesstoken", "id_token", "idtoken", "token", "refresh_token", "subject_token",
    "actor_token", "client_secret", "assertion", "signedjwt", "signed_jwt",
})
_REDACTED = "***"


class GoogleAuthLogRedactor(logging.Filter):
    """Replaces the credential fields of google-auth's ``httpRequest`` / ``httpResponse`` record extras with
    ``***`` (on a copy: the request's own headers dict is never touched). Runs on the logger itself, so before any
    handler, Airflow's or google-api-core's."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in ("httpRequest", "httpResponse"):
            value = record.__dict__.get(name)
            if value is not None:
                record.__dict__[name] = _redacted(value)
        return True


def _redacted(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return _REDACTED
    if isinstance(value, dict):
        return {
            key: _REDACTED if isinstance(key, str) and key.lower() in SECRET_FIELDS and value[key] is not None
            else _redacted(value[key], depth + 1)
            for key in value
        }
    if isinstance(value, list | tuple):
        return [_redacted(item, depth + 1) for item in value]
    return value


_redactor = GoogleAuthLogRedactor()
# The filters already installed by install_filter (a forked child inherits them with the loggers that hold them).
_installed: set[logging.Filter] = set()


def install_filter(log_filter: logging.Filter, loggers: tuple[str, ...]) -> None:
    """Put ``log_filter`` on each of ``loggers``, once per process: later calls return at once (and logging's own
    ``addFilter`` skips a filter a logger already has, so a race only repeats the same work)."""
    if log_filter in _installed:
        return
    for name in loggers:
        logging.getLogger(name).addFilter(log_filter)
    _installed.add(log_filter)


def redact_google_auth_logs() -> None:
    """Install :class:`GoogleAuthLogRedactor` on google-auth's transport loggers (once)."""
    install_filter(_redactor, GOOGLE_AUTH_TRANSPORT_LOGGERS)


#: botocore's wire loggers: at DEBUG, ``botocore.parsers`` prints every AWS answer's body (``Response body: b'...'``)
#: while parsing it, i.e. before the caller holds what it carries and could announce it; ``botocore.endpoint`` prints
#: each request with its headers and body (the request dict) and each prepared request with its headers;
#: ``botocore.auth`` each canonical request, with its ``x-amz-security-token`` header line.
BOTOCORE_WIRE_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.auth")
#: The members of AWS answers and requests whose values are credentials: the secret key (STS, SSO's
#: ``secretAccessKey``, Cognito's ``SecretKey``), the session token (container and instance-metadata credentials call
#: it ``Token``), the JWT of ``GetWebIdentityToken``, the assertion of an ``AssumeRoleWithSAML`` request, and
#: SSO-OIDC's tokens and client secret (``CreateToken``, ``RegisterClient``). Not ``AccessKeyId``: it names a key, it
#: does not sign.
WIRE_SECRET_MEMBERS = (
    "SecretAccessKey", "secretAccessKey", "SecretKey", "SessionToken", "sessionToken", "Token", "WebIdentityToken",
    "SAMLAssertion", "accessToken", "refreshToken", "clientSecret",
)
#: The request headers whose values are credentials: the session token of a signed request, SSO's bearer token.
WIRE_SECRET_HEADERS = ("X-Amz-Security-Token", "x-amz-sso_bearer_token")
_MEMBER_NAMES = "|".join(WIRE_SECRET_MEMBERS)
_HEADER_NAMES = "|".join(re.escape(name) for name in WIRE_SECRET_HEADERS)
# A secret member's value, in query XML (``<SessionToken>v``) and in JSON (``"SessionToken": "v"``), whatever the
# quotes are escaped as: ``"`` raw or in a bytes repr, ``\"`` (or ``\\"`` once repr'd) for JSON inside a string;
# a secret member's or header's value in the repr of botocore's request dicts and headers (``'SAMLAssertion': 'v'``,
# ``'X-Amz-Security-Token': b'v'``); a secret header's line in a canonical request (``x-amz-security-token:v``).
# A name counts only whole (``<Token>`` or ``"Token"``, not ``NextToken``).
_WIRE_SECRET_VALUE = re.compile(
    rf"(?P<xml><(?:{_MEMBER_NAMES})>)[^<]+"
    rf"|(?P<json>(?P<quote>\\*\")(?:{_MEMBER_NAMES})(?P=quote)\s*:\s*(?P=quote))[^\"]+?(?=(?P=quote))"
    rf"|(?P<repr>'(?:{_MEMBER_NAMES}|(?i:{_HEADER_NAMES}))'\s*:\s*b?')[^']+(?=')"
    rf"|(?P<line>(?im:^(?:{_HEADER_NAMES}):))[^\n]+"
)
# Anything JWT-shaped (a JWT's header is base64url of ``{"``, so it starts with ``eyJ``), e.g. in the form-encoded
# body of an AssumeRoleWithWebIdentity request.
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")


class BotocoreWireSecretRedactor(logging.Filter):
    """Replaces the credentials in botocore's wire DEBUG records with ``***``: the values of the secret members of
    any AWS answer (:data:`WIRE_SECRET_MEMBERS`, query XML or JSON, as text or as the bytes repr botocore prints),
    and anything JWT-shaped.

    botocore logs an answer while parsing it, before the caller holds the credentials and could announce them to a
    masker: our own ``GetWebIdentityToken`` JWT, and the role's secret key and session token of the ``AssumeRole``
    that the Amazon provider's ``AwsBaseHook`` makes for a ``role_arn`` AWS connection (the temporary-keys route).
    So the records themselves are rewritten, on the loggers (before any handler). Everything else, the access key
    id, the expiry, the role, other answers, stays as botocore wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is the logging module's to report
            return True
        if "oken" not in text and "ecret" not in text and "eyJ" not in text and "SAML" not in text:
            return True  # every member and header name holds one of these
        redacted = _JWT_SHAPE.sub(_REDACTED, _WIRE_SECRET_VALUE.sub(
            lambda match: (match.group("xml") or match.group("json") or match.group("repr") or match.group("line"))
            + _REDACTED, text))
        if redacted != text:
            record.msg, record.args = redacted, ()
        return True


_wire_redactor = BotocoreWireSecretRedactor()


def redact_botocore_wire_secrets() -> None:
    """Install :class:`BotocoreWireSecretRedactor` on botocore's wire loggers (once)."""
    install_filter(_wire_redactor, BOTOCORE_WIRE_LOGGERS)


#: The SigV4 signature in an ``Authorization`` header (64 lowercase hex digits: the same text in every encoding).
_SIGV4_SIGNATURE = re.compile(r"Signature=([0-9a-f]{64})")
#: botocore's loggers that print a request's SigV4 signature at DEBUG: ``botocore.auth`` while signing
#: (``Signature:\n<hex>``), ``botocore.endpoint`` the prepared request (``Authorization: ... Signature=<hex>``).
BOTOCORE_SIGNING_LOGGERS = ("botocore.auth", "botocore.endpoint")
# ``Signature:\n<hex>``, ``Signature=<hex>`` (Authorization header) and ``X-Amz-Signature=<hex>`` (presigned URLs).
_LOGGED_SIGNATURE = re.compile(r"(Signature(?:=|:\s*))([0-9a-f]{64})(?![0-9a-f])")


class BotocoreSignatureRedactor(logging.Filter):
    """Replaces every SigV4 signature in botocore's signing and request DEBUG records with ``***``.

    A logged request whose signature survives can be replayed to AWS for the ~15 minutes of its ``X-Amz-Date``:
    a ``GetWebIdentityToken`` mints a fresh JWT for the provider's audience, an ``AssumeRole`` the role's
    credentials, and with long-term IAM-user keys there is no session token whose masking would spoil the replay.
    Announcing cannot come first: ``botocore.auth`` logs the signature while computing it, before any botocore event
    hands the signed request out. So the records themselves are rewritten, on the loggers (before any handler,
    Airflow's masker or a plain stderr one). Every request of the process is covered, the Amazon provider's
    included: a signature is a secret whoever signed. Nothing else in the record changes (the canonical request and
    string to sign hold hashes, not the key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot be formatted is the logging module's to report
            return True
        if "Signature" not in text:
            return True
        redacted = _LOGGED_SIGNATURE.sub(lambda match: match.group(1) + _REDACTED, text)
        if redacted != text:
            record.msg, record.args = redacted, ()
        return True


_signature_redactor = BotocoreSignatureRedactor()


def redact_botocore_signatures() -> None:
    """Install :class:`BotocoreSignatureRedactor` on botocore's signing and request loggers (once)."""
    install_filter(_signature_redactor, BOTOCORE_SIGNING_LOGGERS)


def announce_request_signature(request: Any, **_: Any) -> None:
    """botocore ``request-created`` handler, registered after the client's signer: announces the signature of the
    request just signed, so that a host masker knows it before botocore logs the request (``Sending http
    request``) or anything else renders it. The record of ``botocore.auth``, written during signing, is
    :class:`BotocoreSignatureRedactor`'s."""
    authorization = request.headers.get("Authorization") if getattr(request, "headers", None) is not None else None
    if isinstance(authorization, bytes):
        authorization = authorization.decode("ascii", "replace")
    if authorization:
        match = _SIGV4_SIGNATURE.search(authorization)
        if match:
            announce(match.group(1))


def signed_request_secrets(authorization: str, session_token: str | None) -> list[str]:
    """What makes a SigV4-signed request (the sigv4 route's subject token) a secret, to announce instead of the
    whole ~1.3 kB request: Airflow's masker recompiles one expression of all its patterns for each new secret, so a
    long one costs itself and every later secret (README "Performance"); and the whole token matched only itself,
    not the form-encoded STS body that holds it.

    - the signature: with it the request can be replayed (to Google STS, within ~15 minutes); without it, AWS
      refuses it. Hex digits stay as they are in JSON, URL quoting and form encoding, so this one value covers the
      subject token, its decoded JSON and the STS request body alike;
    - the session token as it stands raw (the supplier announced it already: not announced twice) and inside the
      subject token (``quote(json.dumps(...))``). Not its twice-quoted form in the form-encoded STS body: no log of
      ours or google-auth's writes that body (google-auth logs it parsed, i.e. the subject token), and one more
      ~400-character pattern would slow every later secret. The secret access key is never in a signed request.

    Without a recognisable signature in ``authorization`` (never seen), that whole value is returned instead: the
    caller passes the subject token itself when it finds no ``Authorization`` header.
    """
    match = _SIGV4_SIGNATURE.search(authorization)
    values = [match.group(1) if match else authorization]
    if session_token:
        values += [session_token, urllib.parse.quote(json.dumps(session_token)[1:-1])]
    return values
