"""Google credentials from an AWS identity, built on google-auth and shared process-wide.

The exchange itself is google-auth's: ``google.auth.aws.Credentials`` with our boto3 supplier does the STS token
exchange, ``google.auth.impersonated_credentials.Credentials`` the ``generateAccessToken`` call (with ``delegates``
for chains, which google-auth's built-in external-account impersonation lacks). This module adds three things:

1. **Audience-bound subject tokens.** google-auth adds ``x-goog-cloud-target-resource`` *after* signing, so its
   subject tokens can be replayed against any other provider that trusts the same AWS role. We sign it
   (google-auth's own ``RequestSigner`` signs ``additional_headers``). A fresh request is signed for every exchange.
2. **Step-named errors.** Failures come out as :class:`~airflow_provider_gcp_wif.errors.WifExchangeError` saying
   which step failed (``aws_credentials``, ``sts_exchange``, ``impersonation``), Google's reason and the fix.
3. **One exchange per token lifetime per process.** :func:`get_credentials` hands every caller with the same
   settings and AWS identity source the same :class:`WifCredentials`, whose refresh follows botocore's
   ``RefreshableCredentials``: in the *advisory* window before expiry one caller refreshes while the others keep
   using the still-valid token (and a failed advisory refresh is only logged); in the *mandatory* window everyone
   waits for a single refresh. Transient failures (429, 5xx, resets, malformed answers) are retried with capped
   exponential backoff, up to ``num_retries`` times.
4. **No credential leaves by a side door.** STS and IAM Credentials requests go through the provider's own
   transport, which never follows a redirect (:func:`exchange_transport`), whatever transport the caller passed;
   every token is announced to the secrets masker before it can be logged; a failure chains a sanitised copy of
   google-auth's exception (whose arguments can hold a response body with a live token), never the original.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import random
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import tenacity
from google.auth import aws, external_account, identity_pool, impersonated_credentials
from google.auth import credentials as google_credentials
from google.auth import exceptions as google_exceptions

from airflow_provider_gcp_wif import masking
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.constants import (
    AWS_SUBJECT_TOKEN_TYPE,
    GET_CALLER_IDENTITY_URL,
    IAM_SCOPE,
    JWT_SUBJECT_TOKEN_TYPE,
    TARGET_RESOURCE_HEADER,
)
from airflow_provider_gcp_wif.diagnosis import UNKNOWN_CALLER, Caller, translate_exception
from airflow_provider_gcp_wif.errors import (
    AnswerEncoded,
    AnswerTooLarge,
    RedirectRefused,
    Step,
    WifConfigError,
    WifExchangeError,
    sanitized_cause,
)
from airflow_provider_gcp_wif.host_cache import HostTokenCache, SharedToken
from airflow_provider_gcp_wif.resource_names import https_audience, sts_host
from airflow_provider_gcp_wif.supplier import Boto3Supplier, WebIdentityTokenSupplier

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Refresh ahead of expiry: at most this long before it (botocore's "advisory" window) ...
ADVISORY_REFRESH_SECONDS = 300
#: ... and never later than this (the "mandatory" window; google-auth's own threshold is 225 s).
MANDATORY_REFRESH_SECONDS = 225
#: The longest a federated (STS) token lives; an impersonated one lives at most the settings' lifetime_seconds.
FEDERATED_TOKEN_MAX_SECONDS = 3600


class _StatusRecorder:
    """Passes requests through to google-auth's transport and remembers the last HTTP status, which google-auth
    drops from the exceptions it raises for error answers, and an error answer's body, which it can drop too (its
    OAuth error handler raises a bare ``TypeError`` for a JSON body that is not an object). A successful answer's
    body (it carries the token) is never kept."""

    def __init__(self, request: Any) -> None:
        self._request = request
        self.status: int | None = None
        self.error_body: bytes | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        response = self._request(*args, **kwargs)
        self.status = getattr(response, "status", None)
        failed = isinstance(self.status, int) and self.status >= 400
        self.error_body = getattr(response, "data", None) if failed else None
        return response


@dataclasses.dataclass(frozen=True)
class WifContext:
    """What a failed step's error names: the settings and who the AWS caller is."""

    settings: WifSettings
    caller: Caller


class _NamedStep:
    """What our three google-auth credential classes share. Their context is a constructor argument, so every copy
    google-auth makes (``with_scopes``, ``with_quota_project``, ...: ``_constructor_args`` for external accounts, the
    source credentials for impersonation) keeps it; their refresh goes through :func:`exchange_transport` whatever
    transport the caller passed, announces the new token, and turns any failure into a
    :class:`~airflow_provider_gcp_wif.errors.WifExchangeError` naming ``step``, except our own errors, which
    surface as they are: a ``WifExchangeError`` of an earlier step, and a ``WifConfigError`` (a setting the AWS side
    cannot serve, found before anything is sent)."""

    step: Step
    token: Any

    def __init__(self, *args: Any, wif: WifContext, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.wif = wif

    def _constructor_args(self) -> dict[str, Any]:
        args: dict[str, Any] = super()._constructor_args()  # type: ignore[misc]
        args["wif"] = self.wif
        return args

    def _secrets(self) -> list[str | None]:
        """The tokens a sanitised cause must not carry."""
        return [self.token]

    def refresh(self, request: Any) -> None:
        # ``request`` (whatever transport the caller holds) is not used: see exchange_transport().
        recorder = _StatusRecorder(exchange_transport())
        try:
            super().refresh(recorder)  # type: ignore[misc]
        except (WifExchangeError, WifConfigError):
            raise  # an earlier step failed (or the AWS side cannot serve a setting): already named
        except Exception as exc:  # noqa: BLE001 - re-raised below as a WifExchangeError
            error = translate_exception(self.step, exc, self.wif.settings, self.wif.caller, status=recorder.status,
                                        body=recorder.error_body)
            cause = sanitized_cause(exc, self._secrets())
        else:
            masking.announce(self.token)  # before the next step sends it (and google-auth logs it)
            return
        raise error from cause


class _FederatedCredentials(_NamedStep, aws.Credentials):
    """``aws.Credentials`` that signs the audience into each subject token and names the STS step on failure."""

    step = "sts_exchange"

    def __init__(self, *args: Any, audience: str, subject_token_type: str,
                 aws_security_credentials_supplier: aws.AwsSecurityCredentialsSupplier, **kwargs: Any) -> None:
        super().__init__(*args, audience=audience, subject_token_type=subject_token_type,
                         aws_security_credentials_supplier=aws_security_credentials_supplier, **kwargs)
        # Our own copies of what signing needs (google-auth's copies pass these arguments again): nothing below
        # reads google-auth's private attributes.
        self.signed_audience = audience
        self.aws_supplier = aws_security_credentials_supplier
        self.supplier_context = external_account.SupplierContext(subject_token_type, audience)

    def retrieve_subject_token(self, request: Any) -> str:
        supplier, context = self.aws_supplier, self.supplier_context
        region = supplier.get_aws_region(context, request)
        aws_credentials = supplier.get_aws_security_credentials(context, request)
        signed = aws.RequestSigner(region).get_request_options(
            aws_credentials,
            GET_CALLER_IDENTITY_URL.format(host=sts_host(region)),
            "POST",
            additional_headers={TARGET_RESOURCE_HEADER: self.signed_audience},
        )
        serialized = {
            "url": signed["url"],
            "method": signed["method"],
            "headers": [{"key": key, "value": value} for key, value in signed["headers"].items()],
        }
        subject_token = urllib.parse.quote(json.dumps(serialized, separators=(",", ":"), sort_keys=True))
        # Announced before it is sent: google-auth's request logging writes it before we see any answer. Its
        # signature and session token, not the whole subject token: see masking.signed_request_secrets.
        masking.announce(*masking.signed_request_secrets(signed["headers"].get("Authorization") or subject_token,
                                                         aws_credentials.session_token))
        return subject_token


class _OidcFederatedCredentials(_NamedStep, identity_pool.Credentials):
    """``identity_pool.Credentials`` over AWS-signed JWTs (``federation: jwt``) that names the STS step on failure.
    The JWT is bound to its audience by AWS's signature (its ``aud`` claim), so nothing needs signing here."""

    step = "sts_exchange"


def jwt_audience(settings: WifSettings) -> str:
    """The ``aud`` of the AWS JWT: the provider's name in the ``https://iam.<universe>/...`` form that Google's
    OIDC providers accept by default (when ``allowed_audiences`` is empty)."""
    return https_audience(settings.audience)


def web_identity_token_supplier(settings: WifSettings, supplier: Boto3Supplier) -> WebIdentityTokenSupplier:
    """The one JWT supplier of this AWS identity for the settings' audience (see
    :meth:`~airflow_provider_gcp_wif.supplier.Boto3Supplier.web_identity_token_supplier`)."""
    return supplier.web_identity_token_supplier(jwt_audience(settings))


class _FederatedSource(google_credentials.Credentials):
    """The impersonation's source as google-auth sees it: a window onto the chain's federated credentials, which
    we hold. google-auth keeps a (shallow) copy of its source and re-scopes it when it can, so handing it the
    federated credentials themselves would leave us a token we could only read back out of google-auth's private
    attributes; every copy of this window refreshes and reads the one federated credential instead (so ID tokens,
    access tokens and every ``with_*`` copy share one STS exchange). It carries the chain's context to the
    impersonated credentials' constructor, which google-auth's copies call with the source alone."""

    def __init__(self, federated: _FederatedCredentials | _OidcFederatedCredentials) -> None:
        super().__init__()
        self.federated = federated
        self.wif = federated.wif

    @property
    def universe_domain(self) -> str:
        return str(self.federated.universe_domain)

    def refresh(self, request: Any) -> None:
        if not self.federated.valid:
            self.federated.refresh(request)
        self.token, self.expiry = self.federated.token, self.federated.expiry


class _ImpersonatedCredentials(_NamedStep, impersonated_credentials.Credentials):
    """``impersonated_credentials.Credentials`` that names the impersonation step on failure."""

    step = "impersonation"

    def __init__(self, source_credentials: _FederatedSource, *args: Any, **kwargs: Any) -> None:
        # google-auth's copies (``_make_copy``) pass the source and google-auth's own arguments only: the context
        # and the federated credentials come with the source.
        self.federated = source_credentials.federated
        super().__init__(source_credentials, *args, wif=source_credentials.wif, **kwargs)

    def _secrets(self) -> list[str | None]:
        return [self.token, self.federated.token]


class CredentialChain:
    """The google-auth credentials of one exchange, held here rather than read back out of google-auth:
    ``federated`` (the STS step) and ``final``, whose token callers use (``federated`` itself for direct resource
    access, else the impersonated credentials over it). No I/O happens on construction."""

    def __init__(self, federated: _FederatedCredentials | _OidcFederatedCredentials,
                 final: google_credentials.Credentials) -> None:
        self.federated = federated
        self.final = final

    @property
    def impersonating(self) -> bool:
        return self.final is not self.federated

    def federated_token(self, request: Any) -> str:
        """A live federated token (refreshed, without retries, when it is not valid)."""
        if not self.federated.valid:
            self.federated.refresh(request)
        return str(self.federated.token)


def build_chain(settings: WifSettings, supplier: Boto3Supplier) -> CredentialChain:
    """The google-auth credentials for ``settings`` (not shared, not refreshed: no I/O happens here)."""
    wif = WifContext(settings, caller_of(settings, supplier))
    impersonating = bool(settings.impersonation_chain)
    common: dict[str, Any] = dict(
        audience=settings.audience,
        token_url=settings.sts_endpoint,
        # Impersonation needs a federated token that may call IAM Credentials, and nothing more (as google-auth
        # re-scopes an impersonation's source): a leaked federated token is then no key to other Google APIs. The
        # requested scopes go to generateAccessToken instead (ERRORS.md:
        # iamcredentials_scope_insufficient_on_federated_token).
        scopes=[IAM_SCOPE] if impersonating else list(settings.scopes),
        quota_project_id=None if impersonating else settings.quota_project_id,
        universe_domain=settings.universe_domain,
        wif=wif,
    )
    federated: _FederatedCredentials | _OidcFederatedCredentials
    if settings.federation == "jwt":
        federated = _OidcFederatedCredentials(
            subject_token_type=JWT_SUBJECT_TOKEN_TYPE,
            subject_token_supplier=web_identity_token_supplier(settings, supplier),
            **common,
        )
    else:
        federated = _FederatedCredentials(
            subject_token_type=AWS_SUBJECT_TOKEN_TYPE, aws_security_credentials_supplier=supplier, **common
        )
    if not impersonating:
        return CredentialChain(federated, federated)
    assert settings.service_account is not None
    impersonated = _ImpersonatedCredentials(
        _FederatedSource(federated),
        target_principal=settings.service_account,
        target_scopes=list(settings.scopes),
        delegates=[f"projects/-/serviceAccounts/{email}" for email in settings.delegates] or None,
        lifetime=settings.lifetime_seconds,
        quota_project_id=settings.quota_project_id,
        iam_endpoint_override=settings.impersonation_url(settings.service_account),
    )
    return CredentialChain(federated, impersonated)


def caller_of(settings: WifSettings, supplier: Boto3Supplier | None) -> Caller:
    """Who the fix texts may name: the AWS caller's ARN and (federation jwt) the claims of the JWT that was sent,
    looked up only when an error is translated."""
    if supplier is None:
        return UNKNOWN_CALLER
    return Caller(
        arn_lookup=supplier.caller_arn,
        jwt_claims_lookup=(lambda: web_identity_token_supplier(settings, supplier).last_claims())
        if settings.federation == "jwt" else None,
    )


# ---------------------------------------------------------------------------------------------------------------
# The exchange's own transport
# ---------------------------------------------------------------------------------------------------------------

#: The most of an STS or IAM Credentials answer the exchange's transport reads (a real one is under a kilobyte).
MAX_ANSWER_BYTES = 1024 * 1024
_ANSWER_CHUNK_BYTES = 64 * 1024

_transport: Any = None
_transport_lock = threading.Lock()


def exchange_transport() -> Any:
    """The transport of every STS and IAM Credentials request: google-auth's requests transport over a session
    that never follows a redirect (a 3xx answer raises :class:`~airflow_provider_gcp_wif.errors.RedirectRefused`).

    google-auth refreshes with whatever ``request`` its caller passes (an ``AuthorizedSession``'s, the httplib2
    adapter of google-api-python-client, a hook's), and those follow redirects: an allowed endpoint answering
    ``307 Location: https://elsewhere/`` would have the subject token POSTed to ``elsewhere``. So the exchange never
    uses the caller's transport. Created once per process, on first use (a forked child makes its own).
    """
    global _transport
    transport = _transport
    if transport is None:
        with _transport_lock:
            transport = _transport
            if transport is None:
                transport = _transport = _no_redirect_transport()
                masking.redact_google_auth_logs()
    return transport


def _no_redirect_transport() -> Any:
    import http.cookiejar

    import google.auth.transport.requests
    import requests

    class NoRedirectSession(requests.Session):
        def get_redirect_target(self, resp: Any) -> str | None:
            return None  # never follow, whatever allow_redirects says

        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            # Streamed, then read here up to MAX_ANSWER_BYTES: an endless or huge answer is not read into memory
            # whole. Uncompressed only: a compressed chunk is decoded whole before it can be counted.
            kwargs["stream"] = True
            headers = {name: value for name, value in dict(kwargs.get("headers") or {}).items()
                       if str(name).lower() != "accept-encoding"}
            kwargs["headers"] = {**headers, "Accept-Encoding": "identity"}
            response = super().request(method, url, *args, **kwargs)
            _read_capped(response, str(url))
            return response

    class NoRedirectRequest(google.auth.transport.requests.Request):
        def __call__(self, url: str, method: str = "GET", body: Any = None, headers: Any = None,
                     timeout: Any = None, **kwargs: Any) -> Any:
            kwargs["allow_redirects"] = False
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = super().__call__(url, method=method, body=body, headers=headers, **kwargs)
            if 300 <= response.status < 400:
                raise RedirectRefused(response.status, response.headers.get("location"), url)
            return response

    session = NoRedirectSession()
    # Shared by every connection's exchange in the process: no state may pass from one answer to the next request.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return NoRedirectRequest(session)


def _read_capped(response: Any, url: str) -> None:
    """Read a streamed ``requests`` answer into ``response.content``, or raise :class:`AnswerTooLarge` (after
    closing the connection) once it passes :data:`MAX_ANSWER_BYTES`, declared or not, or :class:`AnswerEncoded`
    (unread) when it has a ``Content-Encoding`` other than identity (the exchange asks for identity; a compressed
    body would be decoded chunk by chunk before the cap counts it, and with urllib3 < 2.6 one chunk whole)."""
    try:
        encoding = str(response.headers.get("content-encoding") or "").strip()
        if encoding and encoding.lower() != "identity":
            raise AnswerEncoded(encoding, int(response.status_code), url)
        declared = str(response.headers.get("content-length") or "").strip()
        if declared.isdecimal() and declared.isascii() and int(declared) > MAX_ANSWER_BYTES:
            raise AnswerTooLarge(MAX_ANSWER_BYTES, int(response.status_code), url)
        chunks, size = [], 0
        for chunk in response.iter_content(_ANSWER_CHUNK_BYTES):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise AnswerTooLarge(MAX_ANSWER_BYTES, int(response.status_code), url)
            chunks.append(chunk)
    except BaseException:
        response.close()  # not consumed: the connection is dropped, not returned to the pool
        raise
    response._content = b"".join(chunks)  # what .content returns from now on (requests' own cache of the body)
    response.close()  # consumed: returns the connection to the pool (keep-alive)


def _forget_transport_in_child() -> None:
    # A forked child must not share the parent's connection pool, nor inherit a lock held by another thread.
    global _transport, _transport_lock
    _transport = None
    _transport_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_transport_in_child)


def utcnow() -> datetime.datetime:
    """Now, as naive UTC: how google-auth keeps ``expiry``."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _default_request() -> Any:
    return exchange_transport()


def protected_refresh(refresh: Callable[[], Any], *, mandatory: Callable[[], bool], what: str) -> bool:
    """botocore's ``_protected_refresh``: run ``refresh()``; if it fails with a Google auth error (every
    :class:`~airflow_provider_gcp_wif.errors.WifExchangeError` is one) while the current token is only in its
    *advisory* window (``mandatory()`` is false when asked after the failure), the still-valid token stays in use and
    the failure is logged; in the *mandatory* window (or with no token) it raises. ``True`` when it refreshed."""
    try:
        refresh()
    except google_exceptions.GoogleAuthError as err:
        if mandatory():
            raise
        log.warning("gcp_wif: renewing %s ahead of expiry failed, the current one stays in use: %s", what, err)
        return False
    return True


#: The longest pause between two attempts of a step that failed transiently.
MAX_RETRY_DELAY_SECONDS = 8.0


def retry_transient(call: Callable[[], T], *, retries: int, initial_delay: float, what: str | None = None) -> T:
    """``call()``, tried again up to ``retries`` times while it fails with a ``retryable``
    :class:`~airflow_provider_gcp_wif.errors.WifExchangeError` (429, 5xx, resets, malformed answers), after capped
    exponential backoff with jitter: ``min(8 s, initial_delay * 2**n) * U[0.5, 1)``. The last error (or any other)
    is raised as it is. ``what`` names the call in the log (default: the error's step).

    The first attempt runs before any tenacity state is built (a ``Retrying``, its call state and statistics: ~0.1 ms
    of CPU per cold token): tenacity takes over only after a transient failure, from that failed attempt on, so the
    attempts, pauses and log lines are the same as with tenacity from the start."""

    def transient(exc: BaseException) -> bool:
        return isinstance(exc, WifExchangeError) and exc.retryable

    try:
        return call()
    except WifExchangeError as err:
        if not (err.retryable and retries > 0):
            raise
        first_failure: WifExchangeError | None = err

    def backoff(state: tenacity.RetryCallState) -> float:
        base = min(MAX_RETRY_DELAY_SECONDS, initial_delay * 2 ** (state.attempt_number - 1))
        return base * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not a secret

    def announce_retry(state: tenacity.RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome is not None else None
        assert isinstance(err, WifExchangeError)
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        log.info("gcp_wif: %s failed transiently (%s); retry %d of %d in %.2fs", what or err.step,
                 err.code or err.status or "no answer", state.attempt_number, retries, delay)

    def attempt() -> T:
        nonlocal first_failure
        if first_failure is not None:  # tenacity's attempt 1: the one that already failed above
            failure, first_failure = first_failure, None
            raise failure
        return call()

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(retries + 1), wait=backoff, retry=tenacity.retry_if_exception(transient),
        before_sleep=announce_retry, reraise=True,
    )
    return retrying(attempt)


class WifCredentials(google_credentials.CredentialsWithQuotaProject):
    """Thread-safe, shareable Google credentials for one (settings, AWS identity) pair.

    ``token``, ``expiry``, ``valid`` and ``before_request`` behave as google-auth callers expect. ``refresh()``
    fetches a new token only when the current one is inside its refresh window (so many hooks and threads that
    each call it still cause one exchange); :meth:`force_refresh` always exchanges.

    Args:
        settings: the validated settings.
        supplier: the AWS identity source.
        retry_initial_delay: first backoff delay, in seconds, for transient failures (doubles, capped at 8 s).
        host_cache: share the final token with the other processes of this OS user on this host
            (``[gcp_wif] token_cache = host``); ``None`` keeps it in this process.
    """

    def __init__(
        self,
        settings: WifSettings,
        supplier: Boto3Supplier,
        *,
        retry_initial_delay: float = 0.5,
        clock: Callable[[], datetime.datetime] = utcnow,
        host_cache: HostTokenCache | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.supplier = supplier
        self.chain = build_chain(settings, supplier)
        self._quota_project_id = settings.quota_project_id
        self._universe_domain = settings.universe_domain
        self._lock = threading.Lock()
        _live_credentials.add(self)
        self._retry_initial_delay = retry_initial_delay
        self._clock = clock
        self._advisory_at: datetime.datetime | None = None
        self._mandatory_at: datetime.datetime | None = None
        self._issued_at: datetime.datetime | None = None
        self.exchange_count = 0  # successful refreshes (read by the load tests)
        self._host_cache = host_cache

    def __repr__(self) -> str:
        return (
            f"WifCredentials(audience={self.settings.audience!r}, service_account={self.settings.service_account!r}, "
            f"aws={self.supplier.description!r}, expiry={self.expiry!r})"
        )

    # -- state -----------------------------------------------------------------------------------------------

    @property
    def service_account_email(self) -> str | None:
        return self.settings.service_account

    @property
    def expired(self) -> bool:
        return self._mandatory_at is None or self._clock() >= self._mandatory_at

    @property
    def valid(self) -> bool:
        return self.token is not None and not self.expired

    @property
    def token_state(self) -> Any:
        state = getattr(google_credentials, "TokenState", None)
        if state is None:  # google-auth without TokenState
            return None
        if not self.valid:
            return state.INVALID
        return state.STALE if self._advisory_due() else state.FRESH

    def _advisory_due(self) -> bool:
        return self._advisory_at is None or self._clock() >= self._advisory_at

    # -- refresh ---------------------------------------------------------------------------------------------

    def refresh(self, request: Any) -> None:
        """Make sure the token is fresh: exchange only when inside the refresh window (one thread at a time)."""
        if self.token is not None and not self._advisory_due():
            return
        self._refresh(request, blocking=True)

    def force_refresh(self, request: Any | None = None) -> None:
        """Exchange now, whatever the current token's age (e.g. after Google answered 401 with it)."""
        with self._lock:
            self._exchange(request or _default_request(), reuse=False)

    def before_request(self, request: Any, method: str, url: str, headers: dict[str, str]) -> None:
        # The hot path: one clock read, two comparisons, two header writes.
        advisory_at, mandatory_at = self._advisory_at, self._mandatory_at
        if self.token is None or advisory_at is None or mandatory_at is None:
            self._refresh(request, blocking=True)
        else:
            now = self._clock()
            if now >= mandatory_at:
                self._refresh(request, blocking=True)
            elif now >= advisory_at:
                self._refresh(request, blocking=False)
        headers["authorization"] = f"Bearer {self.token}"
        if self._quota_project_id:
            headers["x-goog-user-project"] = self._quota_project_id

    def _refresh(self, request: Any, *, blocking: bool) -> None:
        if not blocking:
            # Advisory window: one thread refreshes, the others keep the still-valid token.
            if not self._lock.acquire(blocking=False):
                return
            try:
                if self._advisory_due():
                    protected_refresh(lambda: self._exchange(request), mandatory=lambda: False, what="the Google token")
            finally:
                self._lock.release()
            return
        with self._lock:
            # Another thread may have refreshed while this one waited.
            if self.token is not None and not self._advisory_due():
                return
            mandatory = self.token is None or self.expired
            protected_refresh(lambda: self._exchange(request), mandatory=lambda: mandatory, what="the Google token")

    def _exchange(self, request: Any, *, reuse: bool = True, shared: bool = True) -> None:
        """One exchange (the caller holds the lock), retrying transient failures. With the host cache, a fresh
        token another process left is taken instead (unless ``reuse`` is off), and a new one is left for them."""
        if shared and self._host_cache is not None:
            self._exchange_through_host(request, reuse=reuse)
            return
        retry_transient(lambda: self.chain.final.refresh(request), retries=self.settings.num_retries,
                        initial_delay=self._retry_initial_delay)
        self.token = self.chain.final.token
        self.expiry = self.chain.final.expiry
        # The federated token (the impersonation's source) is a bearer credential too.
        masking.announce(self.token, self.chain.federated.token)
        self.exchange_count += 1
        now = self._issued_at = self._clock()
        expiry = self.expiry or now + datetime.timedelta(seconds=3600)
        lifetime = max(0.0, (expiry - now).total_seconds())
        advisory = min(ADVISORY_REFRESH_SECONDS, lifetime * 0.25)
        mandatory = min(MANDATORY_REFRESH_SECONDS, lifetime * 0.1)
        self._advisory_at = expiry - datetime.timedelta(seconds=advisory)
        self._mandatory_at = expiry - datetime.timedelta(seconds=mandatory)
        log.debug(
            "gcp_wif: new Google token for %s (expires %s)",
            self.settings.service_account or "the federated identity",
            expiry.isoformat(),
        )

    def _after_fork(self) -> None:
        # Another thread of the parent may have been inside an exchange at the fork: in the child, that thread does
        # not exist, but its lock would stay held forever. Fresh lock, and fresh google-auth credentials (the old
        # ones may hold half of that exchange); the token the parent had stays usable until its refresh window.
        self._lock = threading.Lock()
        self.chain = build_chain(self.settings, self.supplier)

    def federated_token(self, request: Any | None = None) -> str:
        """A live federated token: the bearer of IAM Credentials calls made for this identity besides
        ``generateAccessToken`` (``generateIdToken``). It is the source of the impersonated token, so ID tokens
        and access tokens share one STS exchange; when it is stale, only it is renewed (one STS exchange, under
        this credential's lock, without retries: callers retry ``retryable`` errors)."""
        with self._lock:
            if not self.chain.impersonating:  # direct access: the federated token is this credential's own token
                if not self.valid:
                    self._exchange(request or _default_request())
                return str(self.token)
            return self.chain.federated_token(request or _default_request())

    def _exchange_through_host(self, request: Any, *, reuse: bool) -> None:
        """Under the host-wide lock: take the token another process left while it is fresh; else exchange (if
        that fails while the left token is still before its mandatory window, keep using it) and leave ours.

        The file is keyed by the settings, the AWS identity source *and* the AWS identity this process's session
        resolves now (a keyed digest, see :meth:`HostTokenCache.identity_digest`): a keyless AWS connection names
        no identity, and two processes of one user can resolve it to different ones."""
        host = self._host_cache
        assert host is not None
        identity = host.identity_digest(self.supplier.identity_material())
        if identity is None:  # the directory is refused: this process's own exchange
            self._exchange(request, shared=False)
            return
        key = HostTokenCache.key_for((*cache_key(self.settings, self.supplier), identity))
        principal = self.settings.service_account or self.settings.audience
        lifetime = self.settings.lifetime_seconds if self.chain.impersonating else FEDERATED_TOKEN_MAX_SECONDS
        with host.locked(key):
            now = self._clock()
            left = host.read(key, principal, now=now, max_lifetime_seconds=lifetime) if reuse else None
            if left is not None and now < left.advisory_at:
                self._take(left)
                return
            exchanged = protected_refresh(lambda: self._exchange(request, shared=False),
                                          mandatory=lambda: left is None or now >= left.mandatory_at,
                                          what="the Google token (the host's current one)")
            if not exchanged:
                assert left is not None
                self._take(left)
                return
            assert self.token is not None and self.expiry is not None and self._issued_at is not None
            assert self._advisory_at is not None and self._mandatory_at is not None
            host.write(key, SharedToken(self.token, self.expiry, principal, self._advisory_at, self._mandatory_at,
                                        self._issued_at))

    def _take(self, left: SharedToken) -> None:
        """Use a token another process exchanged (this process's masker learns it too)."""
        masking.announce(left.token)
        self.token, self.expiry = left.token, left.expiry
        self._advisory_at, self._mandatory_at = left.advisory_at, left.mandatory_at
        log.debug("gcp_wif: Google token for %s taken from the host token cache (expires %s)",
                  left.principal, left.expiry.isoformat())

    # -- google-auth plumbing --------------------------------------------------------------------------------

    def with_quota_project(self, quota_project_id: str | None) -> WifCredentials:
        return get_credentials(self.settings.replace(quota_project_id=quota_project_id or ""), self.supplier,
                               host_cache=self._host_cache)

    def get_cred_info(self) -> Mapping[str, str] | None:
        route = "AWS JWT" if self.settings.federation == "jwt" else "AWS"
        return {"credential_source": "airflow-provider-gcp-wif", "credential_type": f"external account ({route})"}


# ---------------------------------------------------------------------------------------------------------------
# The process-wide cache
# ---------------------------------------------------------------------------------------------------------------

_cache: dict[tuple[Any, ...], WifCredentials] = {}
_cache_lock = threading.Lock()
# Every live WifCredentials (cached or not: hooks and clients hold them too), for the fork handler below.
_live_credentials: weakref.WeakSet[WifCredentials] = weakref.WeakSet()
_fork_generation = 0


def fork_generation() -> int:
    """How many forks this process is away from the one that imported this module: holders of shared credentials
    (a hook's binding) compare it to the value they saw, and ask :func:`get_credentials` again when it changed."""
    return _fork_generation


def cache_key(settings: WifSettings, supplier: Boto3Supplier) -> tuple[Any, ...]:
    """The settings themselves (a frozen dataclass: hashed and compared on every field that changes the token; the
    connection id only names it) and the AWS identity source."""
    return (settings, supplier.identity_key, supplier.description)


def get_credentials(settings: WifSettings, supplier: Boto3Supplier, **options: Any) -> WifCredentials:
    """The shared :class:`WifCredentials` for these settings and this AWS identity source (created on first use;
    no network I/O happens here)."""
    key = cache_key(settings, supplier)
    credentials = _cache.get(key)
    if credentials is None:
        with _cache_lock:
            credentials = _cache.get(key)
            if credentials is None:
                credentials = _cache[key] = WifCredentials(settings, supplier, **options)
    return credentials


def clear_cache() -> None:
    """Forget every shared credential (tests; a changed AWS connection)."""
    with _cache_lock:
        _cache.clear()


def _after_fork_in_child() -> None:
    # A forked child (Celery's prefork pool, LocalExecutor, Airflow's task runner, the triggerer's runner) must not
    # inherit locks another thread may hold, nor share boto3 connection pools with its parent: it starts with an
    # empty cache and a new generation, and every credentials object it inherited gets a fresh lock (the AWS
    # suppliers, whose handler ran first, do the same for theirs and drop their boto3 sessions, see supplier.py).
    global _cache_lock, _fork_generation
    _cache_lock = threading.Lock()
    _cache.clear()
    _fork_generation += 1
    for credentials in list(_live_credentials):
        try:
            credentials._after_fork()
        except Exception:  # the lock is already fresh; the others must get theirs too
            log.debug("gcp_wif: resetting credentials after fork failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
