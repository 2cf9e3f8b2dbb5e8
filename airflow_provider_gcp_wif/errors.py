"""The errors of the keyless exchange.

Two error types, both carrying enough context to act on:

* :class:`WifConfigError` (a :class:`ValueError`): a setting is wrong. Raised before any network call; names the
  field and the fix.
* :class:`WifExchangeError` (a :class:`google.auth.exceptions.RefreshError`, so code that already handles Google
  credential failures handles it too): one step of the exchange failed. ``.step`` is ``aws_credentials``,
  ``sts_exchange`` or ``impersonation``; ``.reason`` keeps Google's (or AWS's) own words; ``.fix`` says what to run.

The translation of Google's and AWS's answers into them (rules and fixes) lives in
:mod:`airflow_provider_gcp_wif.diagnosis`; the names those fixes print, in
:mod:`airflow_provider_gcp_wif.resource_names`.
This module also keeps tokens out of error texts and exception chains (:func:`redact`, :func:`sanitized_cause`).
"""

from __future__ import annotations

import itertools
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any, Literal

from google.auth import exceptions as google_exceptions

from airflow_provider_gcp_wif import masking

Step = Literal["aws_credentials", "sts_exchange", "impersonation"]

STEP_TITLES: dict[str, str] = {
    "aws_credentials": "AWS credentials",
    "sts_exchange": "Google STS token exchange",
    "impersonation": "service account impersonation",
}

PROPAGATION_NOTE = "New IAM bindings can take a few minutes to propagate: wait 1-5 minutes and retry."


class WifConfigError(ValueError):
    """A ``gcp_wif`` setting is missing, malformed or inconsistent.

    Attributes:
        field: the connection extra (or environment variable) at fault, e.g. ``"project_number"``.
        problem: what is wrong with it.
        fix: what to change.
        conn_id: the Airflow connection id, when the settings came from one.
    """

    def __init__(self, field: str, problem: str, fix: str = "", conn_id: str | None = None) -> None:
        # Bounded, whatever a caller passes: a setting's value is never echoed whole (excerpts.py shows excerpts).
        self.field = _bounded(field, 100)
        self.problem = _bounded(problem, 1000)
        self.fix = _bounded(fix, 1000)
        self.conn_id = None if conn_id is None else _bounded(conn_id, 250)
        field, problem, fix, conn_id = self.field, self.problem, self.fix, self.conn_id
        where = f"gcp_wif connection {conn_id!r}: " if conn_id else ""
        message = f"{where}{field}: {problem}"
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)


def _bounded(text: object, limit: int) -> str:
    text = text if isinstance(text, str) else f"<{type(text).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


class WifExchangeError(google_exceptions.RefreshError):
    """One step of AWS identity → Google STS → impersonation failed.

    Attributes:
        step: ``"aws_credentials"``, ``"sts_exchange"`` or ``"impersonation"``.
        reason: Google's (or AWS's) own explanation, verbatim where there was one.
        fix: the command or change that repairs it.
        status: the HTTP status of the failed call, when known.
        code: Google's error code (``invalid_target``, ``PERMISSION_DENIED``, ...), when known.
        retryable: ``True`` for transient failures (429, 5xx) that a later attempt may get past.
    """

    def __init__(
        self,
        step: Step,
        reason: str,
        fix: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool = False,
    ) -> None:
        self.step = step
        self.reason = reason
        self.fix = fix
        self.status = status
        self.code = code
        # google-auth's base keeps the flag (``GoogleAuthError(*args, retryable=...)``, since before 2.29.0).
        super().__init__(f"{STEP_TITLES[step]} failed ({step}): {reason} Fix: {fix}", retryable=retryable)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the attributes when the error crosses a process boundary (Airflow's task runner pickles).
        return (
            _rebuild_exchange_error,
            (self.step, self.reason, self.fix, self.status, self.code, self.retryable),
        )


class RedirectRefused(google_exceptions.GoogleAuthError):
    """An STS or IAM Credentials endpoint answered with a redirect, which the exchange never follows: a redirect
    would carry the subject token or the federated Bearer token to a host the endpoint allow-list never saw.

    Attributes:
        status: the 3xx status.
        target_host: ``host[:port]`` of the ``Location`` header (only the host: a URL can carry credentials),
            ``None`` when there was none.
    """

    def __init__(self, status: int, location: str | None, url: str) -> None:
        self.status = status
        self.target_host = _host_of(urllib.parse.urljoin(url, location)) if location else None
        where = f"a redirect to {self.target_host}" if self.target_host else "a redirect without a Location"
        super().__init__(f"the endpoint answered HTTP {status}, {where}")


class AnswerTooLarge(google_exceptions.GoogleAuthError):
    """An STS or IAM Credentials answer longer than the exchange's transport reads (a real one is under a kilobyte):
    the transport stopped reading at ``limit`` bytes and dropped the connection, so an endless or huge body does not
    fill the process's memory.

    Attributes:
        limit: the cap, in bytes.
        status: the answer's HTTP status.
        host: ``host[:port]`` of the endpoint.
    """

    def __init__(self, limit: int, status: int, url: str) -> None:
        self.limit = limit
        self.status = status
        self.host = _host_of(url)
        size = f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit} bytes"
        super().__init__(f"the endpoint {self.host or '(unknown host)'} answered HTTP {status} with a body over "
                         f"{size}")


class AnswerEncoded(google_exceptions.GoogleAuthError):
    """An STS or IAM Credentials answer with a ``Content-Encoding`` (gzip, deflate, br, zstd, ...) although the
    exchange asked for ``Accept-Encoding: identity``: the transport refused it unread, since a compressed body is
    decoded before the answer cap counts it (a small gzip body can decode to gigabytes in one chunk).

    Attributes:
        encoding: the ``Content-Encoding`` the endpoint sent (printable ASCII, at most 40 characters).
        status: the answer's HTTP status.
        host: ``host[:port]`` of the endpoint.
    """

    def __init__(self, encoding: str, status: int, url: str) -> None:
        self.encoding = "".join(c if c.isascii() and c.isprintable() else "?" for c in encoding)[:40]
        self.status = status
        self.host = _host_of(url)
        super().__init__(f"the endpoint {self.host or '(unknown host)'} answered HTTP {status} with Content-Encoding "
                         f"{self.encoding!r}, although the provider asks for identity (an uncompressed body)")


def _host_of(url: str) -> str | None:
    try:
        parts = urllib.parse.urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    host = "".join(c if c.isascii() and c.isprintable() else "?" for c in host)[:100]
    return f"{host}:{port}" if port else host


def _rebuild_exchange_error(
    step: Step, reason: str, fix: str, status: int | None, code: str | None, retryable: bool
) -> WifExchangeError:
    return WifExchangeError(step, reason, fix, status=status, code=code, retryable=retryable)


# ---------------------------------------------------------------------------------------------------------------
# Keeping tokens out of error texts and exception chains
# ---------------------------------------------------------------------------------------------------------------

#: Field names whose values are bearer credentials, in JSON bodies (complete or truncated), Python reprs of dicts
#: and form bodies: OAuth/STS (``access_token``, ``id_token``, ``subject_token``), IAM Credentials
#: (``accessToken``, ``token`` of generateIdToken, ``signedJwt``), and headers.
_SECRET_FIELD = re.compile(
    r"""(?ix)
    ( ["']? \b (?: access_?token | id_?token | refresh_?token | subject_?token | actor_?token | token
                 | signed_?jwt | client_?secret | assertion | x-amz-security-token ) \b ["']?
      \s* [:=] \s* b? ["']? )
    ( [^"'\s,&}\]]+ )
    """
)
_BEARER = re.compile(r"(?i)(\b(?:bearer|aws4-hmac-sha256)\s+)([^\s\"',}\]]+(?:\s*,\s*[^\s\"',}\]]+)*)")
_TOKEN_SHAPES = re.compile(
    r"\bya29\.[\w.~+/=-]+"  # Google OAuth access tokens
    r"|\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*"  # JWTs (ID tokens, signed JWTs)
    r"|Signature=[0-9a-fA-F]{64}"  # SigV4 signatures (subject tokens)
)
#: A header of the serialized subject token (``{"key": "x-amz-security-token", "value": "..."}``), also as JSON
#: inside a JSON string: an endpoint or proxy that echoes the decoded request back puts the AWS session token there.
_SUBJECT_HEADER = re.compile(
    r"""(?ix)
    ( \\?["'] key \\?["'] \s*:\s* \\?["'] (?: x-amz-security-token | authorization ) \\?["'] \s*,\s*
      \\?["'] value \\?["'] \s*:\s* \\?["'] )
    ( [^"'\\]+ )
    """
)
REDACTED = "***"


def secrets_in(text: str) -> set[str]:
    """The bearer-credential values that ``text`` holds in a token field (a response body, a header)."""
    found = {match.group(2) for match in _SECRET_FIELD.finditer(text)}
    found |= {match.group(2) for match in _BEARER.finditer(text)}
    found |= {match.group(2) for match in _SUBJECT_HEADER.finditer(text)}
    found |= {match.group(0) for match in _TOKEN_SHAPES.finditer(text)}
    return {value for value in found if len(value) >= 8}


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every known secret, every token-field value and every token-shaped string replaced by
    ``***``."""
    for secret in secrets:
        if secret:
            for variant in {secret, urllib.parse.unquote(secret)}:
                text = text.replace(variant, REDACTED)
    text = _SECRET_FIELD.sub(lambda m: m.group(1) + REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SUBJECT_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    return _TOKEN_SHAPES.sub(REDACTED, text)


class ExchangeFailureCause(Exception):
    """What google-auth (or the transport) raised under a :class:`WifExchangeError`, as text with every token
    removed.

    google-auth's exceptions can carry the whole response body among their arguments (a ``generateAccessToken``
    answer with a live ``accessToken`` and a malformed ``expireTime``, for one): chaining the original would print
    that token in every formatted traceback, which is what a task log shows. This copy keeps the type, the message
    and the chain below it, redacted, and no traceback (whose frames' locals would hold the body again).
    """

    def __init__(self, message: str, original_type: str = "") -> None:  # (message,) alone unpickles it
        self.original_type = original_type
        super().__init__(message)


def sanitized_cause(exc: BaseException, secrets: Iterable[str | None] = (), depth: int = 8) -> ExchangeFailureCause:
    """A token-free stand-in for ``exc`` and everything chained below it. ``secrets`` (tokens the caller holds) and
    every token found in the chain are also announced to the secrets masker (:mod:`airflow_provider_gcp_wif.masking`).
    """
    known = [s for s in secrets if s]
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < depth and current not in chain:
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    texts = [str(link) for link in chain]
    for link in chain:
        texts += [repr(arg) for arg in link.args]
        texts += [str(value) for value in vars(link).values() if isinstance(value, str | bytes)]  # JSON's .doc
    found = set().union(*(secrets_in(text) for text in texts)) if texts else set()
    masking.announce(*known, *found)
    known += sorted(found, key=len, reverse=True)
    stand_ins = []
    for link in chain:
        name, text = f"{type(link).__module__}.{type(link).__qualname__}", redact(str(link), known)
        stand_ins.append(ExchangeFailureCause(f"{name}: {text}" if text else name, name))
    for upper, lower in itertools.pairwise(stand_ins):
        upper.__cause__ = lower
    return stand_ins[0]
