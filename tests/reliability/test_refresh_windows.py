"""A failed renewal ahead of expiry (botocore's advisory window) keeps the still-valid token and only logs; in the
mandatory window (or with no token) it raises. Checked at points across a token's whole life, for the access token
(this process's, and the one another process left in the host cache) and for ID tokens."""

from __future__ import annotations

import datetime

import google.auth.transport.requests
import pytest

from airflow_provider_gcp_wif import id_tokens
from airflow_provider_gcp_wif.credentials import WifCredentials
from airflow_provider_gcp_wif.errors import WifExchangeError
from airflow_provider_gcp_wif.host_cache import HostTokenCache
from airflow_provider_gcp_wif.refresh import utcnow

REQUEST = google.auth.transport.requests.Request()
AUDIENCE = "https://hello-abc123-ew.a.run.app"


class Clock:
    def __init__(self) -> None:
        self.offset = datetime.timedelta()

    def __call__(self) -> datetime.datetime:
        return utcnow() + self.offset


def headers(credentials: WifCredentials) -> dict[str, str]:
    sent: dict[str, str] = {}
    credentials.before_request(REQUEST, "GET", "https://storage.googleapis.com/", sent)
    return sent


# Where "now" is, as a fraction of the 3600-s token's life: the advisory window starts at 300 s before expiry
# (0.9167), the mandatory one at 225 s (0.9375).
POINTS = [0.5, 0.92, 0.93, 0.937, 0.94, 0.99, 1.01]


@pytest.mark.parametrize("host", [False, True], ids=["process", "host-cache"])
@pytest.mark.parametrize("point", POINTS)
def test_a_failed_renewal_keeps_the_token_only_before_the_mandatory_window(
    emulator, settings_for, role_supplier, tmp_path, point, host
):
    clock = Clock()
    cache = HostTokenCache(str(tmp_path / "cache")) if host else None
    credentials = WifCredentials(settings_for(), role_supplier(), clock=clock, retry_initial_delay=0.01,
                                 host_cache=cache)
    first = headers(credentials)["authorization"]
    issued = clock()
    windows = credentials.windows
    assert credentials.expiry is not None and windows is not None
    clock.offset = (issued + datetime.timedelta(seconds=3600 * point)) - utcnow()
    now = clock()
    emulator.control.inject_faults("iam", statuses=[403])
    exchanges = len(emulator.control.requests("iam"))
    if now >= windows.mandatory_at:
        with pytest.raises(WifExchangeError):
            headers(credentials)
    else:
        assert headers(credentials)["authorization"] == first
    tried = len(emulator.control.requests("iam")) - exchanges
    assert tried == (1 if now >= windows.advisory_at else 0)


@pytest.mark.parametrize(("left", "kept"), [(200, True), (90, True), (40, False), (10, False)])
def test_a_failed_id_token_renewal_keeps_the_current_one_while_a_minute_is_left(
    emulator, settings_for, role_supplier, left, kept
):
    id_tokens.clear_cache()
    credentials = WifCredentials(settings_for(), role_supplier())
    credentials.federated_token(REQUEST)
    emulator.control.set_clock_offset(left - 3600)  # the ID token is minted so that `left` seconds remain
    current = id_tokens.get_id_token(credentials, AUDIENCE)
    emulator.control.set_clock_offset(0)
    emulator.control.inject_faults("iam.generateIdToken", statuses=[403])
    if kept:
        assert id_tokens.get_id_token(credentials, AUDIENCE) == current
    else:
        with pytest.raises(WifExchangeError):
            id_tokens.get_id_token(credentials, AUDIENCE)
    id_tokens.clear_cache()
