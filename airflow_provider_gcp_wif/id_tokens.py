"""Google ID tokens for an AWS identity: IAM Credentials ``generateIdToken`` as the impersonated service account.

A private Cloud Run service, Cloud Function or IAP-protected app wants an *ID token* whose audience is its URL (or
client id), not an access token. Google's STS issues access tokens only, so the federated identity cannot get one
itself: a service account mints it, which is why :func:`get_id_token` needs an ``impersonation_chain``.

The call is authorised with the federated token (as google-auth's ``IDTokenCredentials`` does), with ``delegates``
for chains and ``includeEmail`` so that the receiving service sees which account calls. Unlike google-auth's
``IDTokenCredentials`` (which always calls ``iamcredentials.googleapis.com``), it goes to the settings'
``iam_endpoint`` — already checked against the deployment's allow-list — and never follows a redirect, so the
federated token reaches no other host.

Tokens are cached process-wide per (settings, AWS identity, audience) and renewed ahead of expiry, one renewal at
a time per audience; every token is announced to the secrets masker.
"""

from __future__ import annotations

import datetime
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_gcp_wif import forks, masking
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.diagnosis import Caller, parse_google_answer, translate, translate_exception
from airflow_provider_gcp_wif.errors import (
    AnswerEncoded,
    AnswerTooLarge,
    RedirectRefused,
    WifConfigError,
    WifExchangeError,
)
from airflow_provider_gcp_wif.refresh import RefreshWindows

if TYPE_CHECKING:
    from airflow_provider_gcp_wif.credentials import WifCredentials

#: Renew an ID token when less than this is left of its life (Google's last one hour) ...
REFRESH_AHEAD_SECONDS = 300
#: ... but keep serving the current one if the renewal fails and at least this much is left.
MINIMUM_REMAINING_SECONDS = 60


#: The latest expiry an ID token's ``exp`` claim is read as (9999-12-31T23:59:59Z: datetime's last second).
_LAST_EPOCH = 253402300799


def id_token_windows(expiry: datetime.datetime, now: datetime.datetime) -> RefreshWindows:
    """The refresh windows of an ID token: renewed :data:`REFRESH_AHEAD_SECONDS` before its expiry, served until
    :data:`MINIMUM_REMAINING_SECONDS` before it when the renewal fails."""
    return RefreshWindows.from_expiry(expiry, now, advisory=REFRESH_AHEAD_SECONDS, mandatory=MINIMUM_REMAINING_SECONDS)


@dataclass
class _CachedIdToken:
    token: str | None = field(default=None, repr=False)
    windows: RefreshWindows | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fresh(self, now: datetime.datetime) -> bool:
        """Before its advisory window: served as it is."""
        return bool(self.token) and self.windows is not None and not self.windows.advisory_due(now)

    def usable(self, now: datetime.datetime) -> bool:
        """Before its mandatory window: still served when a renewal fails."""
        return bool(self.token) and self.windows is not None and not self.windows.mandatory_due(now)


_cache: dict[tuple[Any, ...], _CachedIdToken] = {}
_cache_lock = threading.Lock()


def get_id_token(credentials: WifCredentials, audience: str, *, request: Any | None = None) -> str:
    """An ID token for ``audience`` (e.g. ``https://SERVICE-HASH.a.run.app``), signed by Google for the settings'
    service account, with its ``email`` claim.

    Args:
        credentials: the shared credentials of a ``gcp_wif`` connection (their settings name the account).
        audience: what the receiving service expects in ``aud``: a Cloud Run / Cloud Functions URL, or an IAP
            OAuth client id.
        request: ignored (kept for callers): like the STS and generateAccessToken steps, generateIdToken always
            goes through the provider's own transport, which never follows a redirect.

    Raises:
        WifConfigError: no service account is configured, or ``audience`` is empty — before any network call.
        WifExchangeError: a step failed (``impersonation`` for ``generateIdToken`` itself), with the fix.
    """
    from airflow_provider_gcp_wif.credentials import cache_key, protected_refresh

    settings = credentials.settings
    if not isinstance(audience, str) or not audience.strip() or any(c.isspace() for c in audience):
        raise WifConfigError(
            "audience (of the ID token)", f"{audience!r} is not an ID-token audience.",
            "pass the receiving service's URL, e.g. https://SERVICE-HASH-REGION.a.run.app (Cloud Run, Cloud "
            "Functions), or the OAuth client id of an IAP-protected app.", conn_id=settings.conn_id)
    if settings.service_account is None:
        raise WifConfigError(
            "impersonation_chain",
            "is empty, and ID tokens can only be minted for a service account: Google's STS issues access tokens "
            "only, so the federated identity (direct resource access) cannot get an ID token.",
            "set impersonation_chain to a service account the federated identity may use (its "
            "roles/iam.workloadIdentityUser grant includes iam.serviceAccounts.getOpenIdToken), or pass "
            "impersonation_chain= to the hook; grant that account roles/run.invoker on the Cloud Run service.",
            conn_id=settings.conn_id)
    key = (*cache_key(settings, credentials.supplier), audience)
    entry = _cache.get(key)
    if entry is None:
        with _cache_lock:
            entry = _cache.setdefault(key, _CachedIdToken())
    clock = credentials.clock
    if entry.fresh(clock()):
        return str(entry.token)
    with entry.lock:
        if entry.fresh(clock()):  # another thread renewed it meanwhile
            return str(entry.token)

        def renew() -> None:
            token, expiry = _generate(credentials, audience, request)
            entry.token, entry.windows = token, id_token_windows(expiry, clock())

        protected_refresh(renew, mandatory=lambda: not entry.usable(clock()), what=f"the ID token for {audience}")
        return str(entry.token)


def _generate(credentials: WifCredentials, audience: str, request: Any | None) -> tuple[str, datetime.datetime]:
    """One ``generateIdToken`` call (retrying transient failures as the access-token exchange does)."""
    from airflow_provider_gcp_wif.chain import caller_of
    from airflow_provider_gcp_wif.credentials import retry_transient
    from airflow_provider_gcp_wif.transport import exchange_transport

    settings = credentials.settings
    # Like the STS and generateAccessToken steps, never the caller's transport: it may follow redirects.
    request = exchange_transport()
    email = settings.service_account
    url = f"{settings.iam_endpoint}/v1/projects/-/serviceAccounts/{email}:generateIdToken"
    body: dict[str, Any] = {"audience": audience, "includeEmail": True}
    if settings.delegates:
        body["delegates"] = [f"projects/-/serviceAccounts/{delegate}" for delegate in settings.delegates]
    caller = caller_of(settings, credentials.supplier)
    return retry_transient(lambda: _call(request, url, credentials.federated_token(request), body, settings, caller),
                           retries=settings.num_retries, initial_delay=0.5, what="generateIdToken")


def _call(request: Any, url: str, bearer: str, body: dict[str, Any], settings: WifSettings, caller: Caller
          ) -> tuple[str, datetime.datetime]:
    from google.auth import exceptions as google_exceptions
    from google.auth import jwt

    headers = {"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"}
    try:
        # The provider's own transport refuses redirects: the federated token goes to the allowed IAM endpoint
        # and nowhere else.
        response = request(url=url, method="POST", body=json.dumps(body).encode(), headers=headers)
    except (RedirectRefused, AnswerTooLarge, AnswerEncoded) as err:
        raise translate_exception("impersonation", err, settings, caller) from None
    except google_exceptions.TransportError as err:
        raise WifExchangeError("impersonation", f"generateIdToken could not reach {url}: {err}.",
                               "a network failure: retry; check connectivity to the IAM Credentials endpoint.",
                               retryable=True) from err
    status = int(response.status)
    data = response.data.decode("utf-8", "replace") if isinstance(response.data, bytes) else str(response.data)
    if status != 200:
        answer = parse_google_answer(data, status)
        if answer is None:
            raise WifExchangeError("impersonation", f"generateIdToken answered HTTP {status} without a Google "
                                   "error body.", "check iam_endpoint; retry.", status=status,
                                   retryable=status == 429 or status >= 500)
        raise translate("impersonation", answer, settings, caller)
    try:
        token = json.loads(data)["token"]
        if isinstance(token, str):
            # A secret whatever its shape: announced before it is decoded (an unreadable one must not show
            # unmasked in the error's chain or a log of this answer either).
            masking.announce(token)
        claims = jwt.decode(token, verify=False)  # our own fresh token: only its expiry is read
        expires_at = min(max(float(claims["exp"]), 0.0), _LAST_EPOCH)
        expiry = datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc).replace(tzinfo=None)
    except (ValueError, KeyError, TypeError) as err:
        raise WifExchangeError("impersonation", "generateIdToken answered 200 without a readable ID token.",
                               "retry; if it persists, check iam_endpoint.", status=status,
                               retryable=True) from err
    return str(token), expiry


def clear_cache() -> None:
    """Forget every cached ID token (tests)."""
    with _cache_lock:
        _cache.clear()


def _after_fork_in_child() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()
    _cache.clear()


forks.register(forks.ID_TOKENS, _after_fork_in_child)
