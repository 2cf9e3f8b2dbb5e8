"""When a cached token is renewed: its refresh windows, on one clock.

botocore's ``RefreshableCredentials`` semantics, for every token this provider caches: from the *advisory* moment on,
one caller renews while the others keep using the still-valid token (a failed renewal is only logged); from the
*mandatory* moment on, the token is not used any more and everyone waits for one renewal. Who uses which windows:

=====================================  ======================================  =====================================
cache                                  advisory                                mandatory
=====================================  ======================================  =====================================
Google access tokens (credentials)     min(300 s, a quarter of the lifetime)   min(225 s, a tenth of the lifetime)
the host token cache (host_cache)      as written by the process that          as written by the process that
                                       exchanged                               exchanged
ID tokens (id_tokens)                  300 s                                   60 s
AWS JWTs (supplier, federation jwt)    min(60 s, half the lifetime)            the same: reused until then
=====================================  ======================================  =====================================

Times are naive UTC :class:`datetime.datetime` (google-auth's ``expiry``), read from a :data:`Clock` that tests
replace. A moment at or after a window's start is inside it. Pure: no I/O, no Airflow, no locks.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable

#: What every cache of this provider reads the time from: now, as naive UTC.
Clock = Callable[[], datetime.datetime]


def utcnow() -> datetime.datetime:
    """Now, as naive UTC: how google-auth keeps ``expiry`` (the default :data:`Clock`)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


@dataclasses.dataclass(frozen=True)
class RefreshWindows:
    """The refresh windows of one token.

    Attributes:
        expiry: when the token stops being accepted.
        advisory_at: from this moment, renew ahead of expiry (one caller; the others keep the token).
        mandatory_at: from this moment, the token is not used any more: everyone waits for a renewal.
    """

    expiry: datetime.datetime
    advisory_at: datetime.datetime
    mandatory_at: datetime.datetime

    @classmethod
    def from_expiry(cls, expiry: datetime.datetime, now: datetime.datetime, *, advisory: float, mandatory: float,
                    advisory_share: float | None = None, mandatory_share: float | None = None) -> RefreshWindows:
        """The windows of a token that expires at ``expiry``, obtained ``now``: ``advisory`` and ``mandatory``
        seconds before its expiry, each shortened to ``*_share`` of the token's lifetime (``expiry - now``, at least
        0) when given, so that a short-lived token is not renewed the moment it arrives."""
        lifetime = max(0.0, (expiry - now).total_seconds())
        if advisory_share is not None:
            advisory = min(advisory, lifetime * advisory_share)
        if mandatory_share is not None:
            mandatory = min(mandatory, lifetime * mandatory_share)
        return cls(expiry, expiry - datetime.timedelta(seconds=advisory),
                   expiry - datetime.timedelta(seconds=mandatory))

    def advisory_due(self, now: datetime.datetime) -> bool:
        """Inside the advisory window (or past it): time to renew, if one can."""
        return now >= self.advisory_at

    def mandatory_due(self, now: datetime.datetime) -> bool:
        """Inside the mandatory window (or past it): the token is not to be used any more."""
        return now >= self.mandatory_at

    def remaining(self, now: datetime.datetime) -> float:
        """Seconds until the token expires (negative once it has)."""
        return (self.expiry - now).total_seconds()
