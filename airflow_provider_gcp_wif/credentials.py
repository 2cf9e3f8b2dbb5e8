"""Google credentials from an AWS identity, shared process-wide: one exchange per token lifetime per process.

:func:`get_credentials` hands every caller with the same settings and AWS identity source the same
:class:`WifCredentials`, whose refresh follows botocore's ``RefreshableCredentials``: in the *advisory* window before
expiry one caller refreshes while the others keep using the still-valid token (and a failed advisory refresh is only
logged); in the *mandatory* window everyone waits for a single refresh. Transient failures (429, 5xx, resets,
malformed answers) are retried with capped exponential backoff, up to ``num_retries`` times.

The exchange itself (google-auth's credentials, audience-bound subject tokens, step-named errors) is
:mod:`~airflow_provider_gcp_wif.chain`'s; its transport, which never follows a redirect, is
:mod:`~airflow_provider_gcp_wif.transport`'s.
"""

from __future__ import annotations

import datetime
import logging
import random
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import tenacity
from google.auth import credentials as google_credentials
from google.auth import exceptions as google_exceptions

from airflow_provider_gcp_wif import forks, masking
from airflow_provider_gcp_wif.chain import build_chain
from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.host_cache import HostTokenCache, SharedToken
from airflow_provider_gcp_wif.refresh import Clock, RefreshWindows, utcnow
from airflow_provider_gcp_wif.supplier import Boto3Supplier
from airflow_provider_gcp_wif.transport import exchange_transport

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Refresh ahead of expiry: at most this long before it (botocore's "advisory" window) ...
ADVISORY_REFRESH_SECONDS = 300
#: ... and never later than this (the "mandatory" window; google-auth's own threshold is 225 s).
MANDATORY_REFRESH_SECONDS = 225
#: The longest a federated (STS) token lives; an impersonated one lives at most the settings' lifetime_seconds.
FEDERATED_TOKEN_MAX_SECONDS = 3600


def access_token_windows(expiry: datetime.datetime, now: datetime.datetime) -> RefreshWindows:
    """The refresh windows of a Google access token obtained ``now``: :data:`ADVISORY_REFRESH_SECONDS` and
    :data:`MANDATORY_REFRESH_SECONDS` before its expiry, at most a quarter and a tenth of its lifetime."""
    return RefreshWindows.from_expiry(expiry, now, advisory=ADVISORY_REFRESH_SECONDS,
                                      mandatory=MANDATORY_REFRESH_SECONDS, advisory_share=0.25, mandatory_share=0.1)


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
        clock: what the refresh windows are read on (naive UTC, :func:`~airflow_provider_gcp_wif.refresh.utcnow`
            by default; tests move it); the ID tokens minted with these credentials follow it too.
        host_cache: share the final token with the other processes of this OS user on this host
            (``[gcp_wif] token_cache = host``); ``None`` keeps it in this process.
    """

    def __init__(
        self,
        settings: WifSettings,
        supplier: Boto3Supplier,
        *,
        retry_initial_delay: float = 0.5,
        clock: Clock = utcnow,
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
        self.clock = clock
        self._windows: RefreshWindows | None = None
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
        windows = self._windows
        return windows is None or windows.mandatory_due(self.clock())

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

    @property
    def windows(self) -> RefreshWindows | None:
        """The current token's refresh windows (``None`` before the first token)."""
        return self._windows

    @property
    def refreshing(self) -> bool:
        """Whether a thread is renewing this credential's token right now (it holds the credential's lock)."""
        return self._lock.locked()

    def _advisory_due(self) -> bool:
        windows = self._windows
        return windows is None or windows.advisory_due(self.clock())

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
        windows = self._windows
        if self.token is None or windows is None:
            self._refresh(request, blocking=True)
        else:
            now = self.clock()
            if windows.mandatory_due(now):
                self._refresh(request, blocking=True)
            elif windows.advisory_due(now):
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
        now = self._issued_at = self.clock()
        expiry = self.expiry or now + datetime.timedelta(seconds=3600)
        self._windows = access_token_windows(expiry, now)
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
            now = self.clock()
            left = host.read(key, principal, now=now, max_lifetime_seconds=lifetime) if reuse else None
            if left is not None and not left.windows.advisory_due(now):
                self._take(left)
                return
            exchanged = protected_refresh(lambda: self._exchange(request, shared=False),
                                          mandatory=lambda: left is None or left.windows.mandatory_due(now),
                                          what="the Google token (the host's current one)")
            if not exchanged:
                assert left is not None
                self._take(left)
                return
            assert self.token is not None and self.expiry is not None and self._issued_at is not None
            assert self._windows is not None and self._windows.expiry == self.expiry
            host.write(key, SharedToken(self.token, principal, self._windows, self._issued_at))

    def _take(self, left: SharedToken) -> None:
        """Use a token another process exchanged (this process's masker learns it too)."""
        masking.announce(left.token)
        self.token, self.expiry = left.token, left.expiry
        self._windows = left.windows
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
    # suppliers, whose handler runs before this one (forks.AWS_SUPPLIERS), do the same for theirs and drop their
    # boto3 sessions, see supplier.py).
    global _cache_lock, _fork_generation
    _cache_lock = threading.Lock()
    _cache.clear()
    _fork_generation += 1
    for credentials in list(_live_credentials):
        try:
            credentials._after_fork()
        except Exception:  # the lock is already fresh; the others must get theirs too
            log.debug("gcp_wif: resetting credentials after fork failed", exc_info=True)


forks.register(forks.GOOGLE_CREDENTIALS, _after_fork_in_child)
