"""One refresh-window primitive for the four token caches: for any expiry and any two moments (when the token came,
when it is asked for), each cache decides exactly as its own rule did before the primitive replaced it. The old
rules are written out here as they were, on their own clocks."""

from __future__ import annotations

import datetime

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_gcp_wif.credentials import access_token_windows
from airflow_provider_gcp_wif.id_tokens import id_token_windows
from airflow_provider_gcp_wif.refresh import RefreshWindows
from airflow_provider_gcp_wif.supplier import jwt_windows

UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1)
# A year either side of 2030 (with instants down to the microsecond), so that every delta lands on boundaries too.
moments = st.datetimes(min_value=datetime.datetime(2029, 1, 1), max_value=datetime.datetime(2031, 1, 1))
offsets = st.one_of(st.integers(-400, 4000).map(lambda s: datetime.timedelta(seconds=s)),
                    st.floats(-400, 4000, allow_nan=False).map(lambda s: datetime.timedelta(seconds=s)),
                    st.integers(-10**9, 10**10).map(lambda us: datetime.timedelta(microseconds=us)))


def old_access_token_rule(expiry, issued, now):
    """credentials.WifCredentials._exchange, expired and _advisory_due (naive UTC, WifCredentials' clock)."""
    lifetime = max(0.0, (expiry - issued).total_seconds())
    advisory = min(300, lifetime * 0.25)
    mandatory = min(225, lifetime * 0.1)
    advisory_at = expiry - datetime.timedelta(seconds=advisory)
    mandatory_at = expiry - datetime.timedelta(seconds=mandatory)
    return now >= advisory_at, now >= mandatory_at


def old_jwt_rule(expiration, fetched, now):
    """supplier.WebIdentityTokenSupplier.get_subject_token: reused while ``now < reuse_until``."""
    lifetime = max(0.0, (expiration - fetched).total_seconds())
    reuse_until = expiration - datetime.timedelta(seconds=min(60.0, lifetime / 2))
    return now < reuse_until


def old_id_token_rule(expires_at: float, now: float):
    """id_tokens.get_id_token on time.time(): renewed unless remaining > 300; kept on failure unless <= 60."""
    remaining = expires_at - now
    return not remaining > 300, remaining <= 60


def old_host_cache_rule(advisory_at, mandatory_at, now):
    """credentials.WifCredentials._exchange_through_host: taken while now < advisory_at; a failed exchange raises
    when now >= mandatory_at."""
    return not now < advisory_at, now >= mandatory_at


@given(moments, offsets, offsets)
def test_access_token_windows_agree_with_the_old_rule(issued, lifetime, later):
    expiry, now = issued + lifetime, issued + later
    windows = access_token_windows(expiry, issued)
    assert (windows.advisory_due(now), windows.mandatory_due(now)) == old_access_token_rule(expiry, issued, now)


@given(moments, offsets, offsets)
def test_jwt_windows_agree_with_the_old_rule(fetched, lifetime, later):
    expiration, now = fetched + lifetime, fetched + later
    assert (not jwt_windows(expiration, fetched).mandatory_due(now)) == old_jwt_rule(expiration, fetched, now)
    # The old rule ran on aware datetimes: the same answer.
    aware = [moment.replace(tzinfo=UTC) for moment in (expiration, fetched, now)]
    assert old_jwt_rule(*aware) == old_jwt_rule(expiration, fetched, now)


@given(st.integers(0, 2 * 10**9), st.integers(-10**9, 10**10))
def test_id_token_windows_agree_with_the_old_rule(exp, microseconds_before):
    """``exp`` is a JWT NumericDate (whole seconds); ``now`` any microsecond, as the naive UTC clock reads it and as
    ``time.time()`` gave it (the same instant as an epoch float)."""
    expiry = EPOCH + datetime.timedelta(seconds=exp)
    now = expiry - datetime.timedelta(microseconds=microseconds_before)
    windows = id_token_windows(expiry, now - datetime.timedelta(seconds=1))
    epoch_now = now.replace(tzinfo=UTC).timestamp()
    assert (windows.advisory_due(now), windows.mandatory_due(now)) == old_id_token_rule(float(exp), epoch_now)


@given(moments, offsets, offsets, offsets)
def test_host_cache_windows_agree_with_the_old_rule(expiry, advisory, mandatory, later):
    windows = RefreshWindows(expiry, expiry - abs(advisory), expiry - abs(mandatory))
    now = expiry + later
    assert (windows.advisory_due(now), windows.mandatory_due(now)) == old_host_cache_rule(
        windows.advisory_at, windows.mandatory_at, now)


def test_a_moment_at_a_windows_start_is_inside_it():
    expiry = datetime.datetime(2030, 1, 1, 12)
    windows = access_token_windows(expiry, expiry - datetime.timedelta(hours=1))
    assert windows.advisory_at == expiry - datetime.timedelta(seconds=300)
    assert windows.mandatory_at == expiry - datetime.timedelta(seconds=225)
    assert not windows.advisory_due(windows.advisory_at - datetime.timedelta(microseconds=1))
    assert windows.advisory_due(windows.advisory_at) and windows.mandatory_due(windows.mandatory_at)
    assert windows.remaining(windows.mandatory_at) == 225
    short = access_token_windows(expiry, expiry - datetime.timedelta(seconds=20))  # a quarter, a tenth of 20 s
    assert (expiry - short.advisory_at, expiry - short.mandatory_at) == (datetime.timedelta(seconds=5),
                                                                         datetime.timedelta(seconds=2))
