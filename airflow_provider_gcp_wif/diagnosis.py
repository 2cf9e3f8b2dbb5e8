"""The diagnosis: Google's and AWS's error answers translated into :class:`WifExchangeError`.

:func:`translate` maps the bodies listed in ``shared/ERRORS.md`` onto messages with a fix, by the rules of the
catalogue in :mod:`airflow_provider_gcp_wif.fixes`; any other answer (undocumented, empty, HTML, truncated) still
names the step, the HTTP status and Google's text, with the likeliest fix for that status at that step
(``fixes.fix_for_status``). Every fix that prints gcloud commands is applied to the emulated clouds in
``tests/core/test_fix_oracle.py`` and must make the exchange work. Nothing here ever formats a token, a secret or a
subject token into a message: only Google's error text, resource names and ARNs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.auth import exceptions as google_exceptions

from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.constants import JWT_POLICY_NAME, JWT_SIGNING_ALGORITHM
from airflow_provider_gcp_wif.errors import (
    AnswerEncoded,
    AnswerTooLarge,
    RedirectRefused,
    Step,
    WifExchangeError,
    redact,
)
from airflow_provider_gcp_wif.fixes import (
    IAM_RULES,
    STS_RULES,
    doctor_invocation,
    fix_aws_key_invalid,
    fix_aws_token_expired,
    fix_for_status,
    fix_transient,
)
from airflow_provider_gcp_wif.resource_names import (
    jwt_policy_document,
    provider_name,
    role_name_of,
    sts_host,
)


@dataclass(frozen=True)
class Caller:
    """Who the caller is on AWS, as far as a fix text needs it: looked up lazily (an extra ``GetCallerIdentity``
    to AWS, or the claims of the JWT that was sent), only on the error path, so that a permission denial can print
    the exact member to bind. A lookup that fails leaves the placeholders in the text.
    """

    arn_lookup: Callable[[], str | None] | None = None
    jwt_claims_lookup: Callable[[], dict[str, Any]] | None = None  # jwt: the claims of the JWT that was sent

    def jwt(self) -> dict[str, Any]:
        if self.jwt_claims_lookup is None:
            return {}
        try:
            return self.jwt_claims_lookup()
        except Exception:  # noqa: BLE001 - best effort: it only improves the fix text
            return {}

    def arn(self) -> str | None:
        if self.arn_lookup is None:
            return None
        try:
            return self.arn_lookup()
        except Exception:  # noqa: BLE001 - best effort: it only improves the fix text
            return None


#: Nobody known: the fix texts keep their placeholders for the caller.
UNKNOWN_CALLER = Caller()

#: Settings made of placeholders (``PROJECT_NUMBER``, ``POOL_ID``, ``PROVIDER_ID``, no service account: ``SA_EMAIL``):
#: the fixes as the troubleshooting table shows them, and the fixes of AWS answers that name no Google resource.
PLACEHOLDER_SETTINGS = WifSettings(
    audience=provider_name("PROJECT_NUMBER", "POOL_ID", "PROVIDER_ID"),
    project_number="PROJECT_NUMBER",
    pool_id="POOL_ID",
    provider_id="PROVIDER_ID",
)


@dataclass(frozen=True)
class GoogleAnswer:
    """An error answer from STS or IAM Credentials, parsed from either of Google's shapes."""

    status: int | None
    code: str  # OAuth ``error`` or google.rpc ``status``
    message: str  # ``error_description`` or ``message``
    reasons: tuple[str, ...]  # google.rpc ErrorInfo reasons

    def says(self, *fragments: str) -> bool:
        text = self.message.lower()
        return all(fragment.lower() in text for fragment in fragments)


_TRANSIENT_CODES = {"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"}


def parse_google_answer(body: str | bytes | dict[str, Any] | None, status: int | None = None) -> GoogleAnswer | None:
    """Parse an OAuth-style (``{"error": "...", "error_description": "..."}``) or google.rpc-style
    (``{"error": {"code", "message", "status", "details"}}``) error body; ``None`` when it is neither."""
    if body is None:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    if not isinstance(body, dict) or "error" not in body:
        return None
    error = body["error"]
    if isinstance(error, str):
        return GoogleAnswer(status, error, str(body.get("error_description", "")), ())
    if isinstance(error, dict):
        reasons = tuple(
            str(detail.get("reason"))
            for detail in error.get("details") or []
            if isinstance(detail, dict) and detail.get("reason")
        )
        code = error.get("code")
        return GoogleAnswer(
            int(code) if isinstance(code, int) else status,
            str(error.get("status", "")),
            str(error.get("message", "")),
            reasons,
        )
    return None


def answer_from_exception(exc: BaseException) -> GoogleAnswer | None:
    """google-auth raises ``OAuthError(details, response_body)`` for STS and ``RefreshError(message,
    response_body)`` for IAM Credentials: find the body among the arguments."""
    for arg in reversed(exc.args):
        answer = parse_google_answer(arg) if isinstance(arg, str | bytes | dict) else None
        if answer is not None:
            return answer
        if isinstance(arg, str):
            # Some google-auth versions put the body after a prefix: "...: {json}".
            start = arg.find("{")
            if start >= 0:
                answer = parse_google_answer(arg[start:])
                if answer is not None:
                    return answer
    return None


MAX_GOOGLE_TEXT = 300


def translate(step: Step, answer: GoogleAnswer, settings: WifSettings, caller: Caller = UNKNOWN_CALLER
              ) -> WifExchangeError:
    """Turn one of Google's error answers into a :class:`WifExchangeError` for ``step``.

    An answer no catalogue rule explains still names the step and the HTTP status, keeps Google's text and gets the
    likeliest fix for that status at that step (:func:`fix_for_status`); ``gcp-wif doctor`` is added, not the fix.
    """
    rules = STS_RULES if step == "sts_exchange" else IAM_RULES
    reason = _truncate(redact(answer.message or answer.code))
    if answer.code and answer.code not in reason:
        reason = f"{answer.code}: {reason}"
    retryable = (answer.status is not None and (answer.status == 429 or answer.status >= 500)) or (
        answer.code in _TRANSIENT_CODES
    )
    if answer.status is not None:
        reason = f"HTTP {answer.status} from {_SERVICE[step]}: {reason}"
    for _name, matches, fix in rules:
        if matches(answer):
            return WifExchangeError(step, _sentence(reason), fix(settings, caller), status=answer.status,
                                    code=answer.code, retryable=retryable)
    return _unknown(step, answer.status, _sentence(reason), settings, caller, code=answer.code, retryable=retryable)


def _unknown(step: Step, status: int | None, text: str, s: WifSettings, caller: Caller, *, code: str | None = None,
             retryable: bool = False) -> WifExchangeError:
    if not text.startswith("HTTP "):
        text = f"HTTP {status} from {_SERVICE[step]}: {text}" if status is not None else text
    fix = fix_for_status(step, status, s, caller)
    if "gcp-wif doctor" not in fix:
        fix += f" Then `{doctor_invocation(s)}` checks each step."
    return WifExchangeError(step, text, fix, status=status, code=code, retryable=retryable)


_SERVICE = {"sts_exchange": "Google STS", "impersonation": "IAM Credentials", "aws_credentials": "AWS"}


def describe_body(body: str | bytes | None) -> str:
    """Google's text for the message, whatever came back: JSON as it is, an HTML page by its title, an empty body
    said to be empty; truncated to :data:`MAX_GOOGLE_TEXT` characters."""
    if body is None:
        return "(no body)."
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = body.strip()
    if not text:
        return "(empty body)."
    if re.match(r"(?is)^\s*(<!doctype html|<html|<\?xml|<head|<body)", text) or "</html>" in text.lower():
        title = re.search(r"(?is)<title[^>]*>(.*?)</title>", text)
        heading = title.group(1).strip() if title else re.sub(r"(?s)<[^>]+>", " ", text)
        return _sentence("an HTML page: " + _truncate(" ".join(heading.split())))
    if text.startswith(("{", "[")):
        try:
            json.loads(text)
        except ValueError:
            return _sentence("a truncated or malformed JSON body: " + _truncate(text))
    return _sentence(_truncate(" ".join(text.split())))


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_GOOGLE_TEXT else text[: MAX_GOOGLE_TEXT - 3] + "..."


def _body_of(exc: BaseException) -> str | bytes | None:
    """The response body google-auth put among the exception's arguments (its last string or bytes)."""
    for arg in reversed(exc.args):
        if isinstance(arg, str | bytes):
            return arg
    return None


def translate_exception(
    step: Step, exc: BaseException, settings: WifSettings, caller: Caller = UNKNOWN_CALLER, *,
    status: int | None = None, body: str | bytes | None = None,
) -> WifExchangeError:
    """Translate whatever google-auth raised during ``step``; unknown failures keep their text and name the step.

    ``status`` is the HTTP status of the failed call when the caller saw it (google-auth drops it from its
    exceptions); it is what names the likeliest fix when the body is empty, HTML, truncated or unknown. ``body`` is
    that failed answer's body when the caller saw it: Google's text when google-auth raised something that does
    not carry it (a ``TypeError`` for a JSON body that is not an object).
    """
    if isinstance(exc, WifExchangeError):
        return exc
    setting = "sts_endpoint (or credential_config's token_url)" if step == "sts_exchange" else "iam_endpoint"
    if isinstance(exc, RedirectRefused):
        return WifExchangeError(
            step,
            f"{exc}; the provider never follows a redirect with credentials (it would send the "
            f"{'subject token' if step == 'sts_exchange' else 'federated Bearer token'} to another host).",
            f"point {setting} at the final URL, the one the endpoint redirects to, once you have checked that it "
            "is a Google endpoint you trust (and allowed by [gcp_wif] allowed_endpoint_hosts if it is not Google's).",
            status=exc.status,
        )
    if isinstance(exc, AnswerTooLarge):
        return WifExchangeError(
            step,
            f"{exc}; the provider stopped reading it there (a Google token answer is under a kilobyte).",
            f"check that {setting} is Google's endpoint, or a proxy that passes its answers through unchanged: "
            "something else answered in its place.",
            status=exc.status,
        )
    if isinstance(exc, AnswerEncoded):
        return WifExchangeError(
            step,
            f"{exc}; the provider refused it unread (a compressed body is decoded before it can be capped).",
            f"check that {setting} is Google's endpoint, or a proxy that passes its answers through unchanged and "
            "honours Accept-Encoding: identity: something else answered in its place.",
            status=exc.status,
        )
    carries_body = isinstance(exc, google_exceptions.GoogleAuthError)  # google-auth's own: the body is an argument
    answer = answer_from_exception(exc) if carries_body or body is None else parse_google_answer(body)
    if answer is not None:
        if answer.status is None and status is not None:
            answer = GoogleAnswer(status, answer.code, answer.message, answer.reasons)
        return translate(step, answer, settings, caller)
    if status is not None and step != "aws_credentials" and status >= 400:
        retryable = status == 429 or status >= 500
        shown = _body_of(exc) if carries_body or body is None else body
        return _unknown(step, status, redact(describe_body(shown)), settings, caller, retryable=retryable)
    # Resets and timeouts (TransportError) and malformed answers (a 200 that is not JSON, or lacks the token)
    # are worth another attempt; google-auth lets them escape without a status.
    retryable = (
        bool(getattr(exc, "retryable", False))
        or isinstance(exc, google_exceptions.TransportError | json.JSONDecodeError)
        or "invalid expiration in response" in str(exc)
    )
    text = _sentence(redact(str(exc.args[0])) if exc.args else type(exc).__name__)
    fix = (fix_transient(settings, caller) if retryable
           else f"run `{doctor_invocation(settings)}` for a step-by-step check.")
    return WifExchangeError(step, text, fix, retryable=retryable)


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."



def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (for messages and the doctor: Google verifies the signature); ``{}`` when it
    is not a JWT."""
    import base64

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def aws_answer(err: BaseException) -> tuple[dict[str, Any], Any]:
    """The ``Error`` member of a botocore ``ClientError``'s answer and its HTTP status (``{}`` and ``None`` for
    anything else, e.g. a connection failure)."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return {}, None
    error = response.get("Error", {})
    meta = response.get("ResponseMetadata")
    return (error if isinstance(error, dict) else {}), (meta.get("HTTPStatusCode") if isinstance(meta, dict) else None)


def aws_error_code(err: BaseException) -> str:
    """AWS's error code of a botocore ``ClientError`` (``AccessDenied``, ...); ``""`` for anything else."""
    return str(aws_answer(err)[0].get("Code", ""))


def translate_aws_error(
    err: BaseException, source: str, region: str, audience: str, caller_arn: str | None = None
) -> WifExchangeError:
    """A failed ``GetWebIdentityToken`` (botocore ``ClientError`` or a connection failure) as a
    :class:`WifExchangeError` at step ``aws_credentials``, with AWS's code and message and the fix."""
    error, status = aws_answer(err)
    code = aws_error_code(err)
    message = _truncate(redact(str(error.get("Message", ""))))
    where = f"AWS STS GetWebIdentityToken ({region}) for {source}"
    if not code:
        return WifExchangeError(
            "aws_credentials", _sentence(f"{where} failed: {type(err).__name__}: {_truncate(redact(str(err)))}"),
            f"check that this worker reaches the regional endpoint {sts_host(region)} (a VPC endpoint for "
            "STS, or a NAT route), then retry.", retryable=True)
    reason = _sentence(f"{where} answered {code}" + (f": {message}" if message else ""))
    role = role_name_of(caller_arn) or "ROLE_NAME"
    if code == "OutboundWebIdentityFederationDisabledException":
        fix = ("IAM outbound identity federation is not enabled in this AWS account: an administrator of the "
               "account runs `aws iam enable-outbound-web-identity-federation` once (it prints the account's issuer "
               "URL, which the Google OIDC provider's --issuer-uri must be); or use federation sigv4.")
    elif code in ("AccessDenied", "AccessDeniedException"):
        fix = (f"allow the role to ask for JWTs for this audience: `aws iam put-role-policy --role-name {role} "
               f"--policy-name {JWT_POLICY_NAME} --policy-document '{jwt_policy_document(audience)}'` "
               "(`gcp-wif setup --federation jwt` prints it too); a service control policy or permissions boundary "
               "must allow sts:GetWebIdentityToken as well.")
    elif code == "SessionDurationEscalationException":
        fix = ("the JWT would have outlived the AWS session credentials: give the credential source longer-lived "
               "credentials (the role's session duration), or retry once botocore has renewed them.")
    elif code in ("ExpiredToken", "ExpiredTokenException"):
        fix = fix_aws_token_expired(PLACEHOLDER_SETTINGS, UNKNOWN_CALLER)
    elif code in ("InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"):
        fix = fix_aws_key_invalid(PLACEHOLDER_SETTINGS, UNKNOWN_CALLER)
    elif code in ("Throttling", "ThrottlingException", "ServiceUnavailable", "InternalFailure", "RequestLimitExceeded"):
        return WifExchangeError("aws_credentials", reason, "retry later; AWS STS is throttling or unavailable.",
                                status=status, code=code, retryable=True)
    else:
        fix = ("check the AWS identity with `aws sts get-web-identity-token --audience "
               f"{audience} --signing-algorithm {JWT_SIGNING_ALGORITHM} --region {region}` using the same credentials.")
    return WifExchangeError("aws_credentials", reason, fix, status=status, code=code)

