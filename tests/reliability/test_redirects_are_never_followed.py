"""The exchange never follows a redirect: an allowed STS or IAM Credentials endpoint answering 3xx cannot have the
subject token or the federated Bearer token sent to another host, whatever transport the caller hands in.

Set-up: a loopback "endpoint" (allowed: loopback is) that answers every request with a redirect to a second loopback
listener, the decoy. The decoy must receive nothing, for 301, 302, 307 and 308, on the STS step and on the
impersonation step, through each transport a caller can hold: google-auth's requests ``Request`` (hooks,
``refresh()``), an ``AuthorizedSession`` (google-cloud-* clients) and google-api-python-client's httplib2 adapter.

Every case goes through one branch (the exchange transport's refusal), so the cases are an all-pairs design over
caller, step, status, federation and direct/impersonated rather than their whole product (72 runnable cases): every
pair of values that can occur together occurs in at least one case, which a test below checks.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import google.auth.transport.requests
import google_auth_httplib2
import pytest

from airflow_provider_gcp_wif import transport as wif_transport
from airflow_provider_gcp_wif.credentials import get_credentials
from airflow_provider_gcp_wif.errors import WifExchangeError
from tests.fixtures import listening_decoy, loopback_server


@contextlib.contextmanager
def redirecting_endpoint(status: int, location: str) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback answering every request with ``status`` and ``Location: location``; yields its
    base URL and the request lines it received."""
    seen: list[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def _redirect(self) -> None:
            seen.append(self.requestline)
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            self.send_response(status)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = _redirect

        def log_message(self, *args: object) -> None:
            pass

    with loopback_server(Redirect) as base:
        yield base, seen


def _refresh(credentials) -> None:
    credentials.refresh(google.auth.transport.requests.Request())


def _authorized_session(credentials) -> None:
    google.auth.transport.requests.AuthorizedSession(credentials).get("http://127.0.0.1:9/never-reached")


def _httplib2(credentials) -> None:
    google_auth_httplib2.AuthorizedHttp(credentials).request("http://127.0.0.1:9/never-reached")


CALLERS: dict[str, Callable] = {
    "requests Request (refresh)": _refresh,
    "AuthorizedSession (google-cloud clients)": _authorized_session,
    "httplib2 AuthorizedHttp (googleapiclient)": _httplib2,
}


#: Each parameter's values, in the order the cases are generated.
DIMENSIONS: dict[str, list[Any]] = {
    "caller": list(CALLERS),
    "step": ["sts_exchange", "impersonation"],
    "status": [301, 302, 307, 308],
    "federation": ["sigv4", "jwt"],
    "direct": [False, True],
}


def whole_product() -> list[dict[str, Any]]:
    return [dict(zip(DIMENSIONS, values, strict=True)) for values in itertools.product(*DIMENSIONS.values())]


def runnable(case: dict[str, Any]) -> bool:
    """Direct access has no impersonation step."""
    return not (case["direct"] and case["step"] == "impersonation")


def value_pairs(case: dict[str, Any]) -> set[tuple[tuple[str, Any], tuple[str, Any]]]:
    return set(itertools.combinations(case.items(), 2))  # in DIMENSIONS' order, as every case is built


def all_pairs_cases() -> list[dict[str, Any]]:
    """A deterministic greedy all-pairs design: from the runnable cases of the whole product, in order, repeatedly
    take the first one covering the most pairs of values not yet covered, until every pair that some runnable case
    has is covered."""
    candidates = [case for case in whole_product() if runnable(case)]
    uncovered = set().union(*(value_pairs(case) for case in candidates))
    chosen: list[dict[str, Any]] = []
    while uncovered:
        best = max(candidates, key=lambda case: len(value_pairs(case) & uncovered))
        chosen.append(best)
        uncovered -= value_pairs(best)
    return chosen


CASES = all_pairs_cases()
SHORT_CALLER = {_refresh: "refresh", _authorized_session: "AuthorizedSession", _httplib2: "httplib2"}


def case_id(case: dict[str, Any]) -> str:
    caller = SHORT_CALLER[CALLERS[case["caller"]]]
    return "-".join([caller, case["step"], str(case["status"]), case["federation"],
                     "direct" if case["direct"] else "impersonated"])


def test_the_cases_cover_every_pair_of_values_and_every_value():
    product = whole_product()
    missing = [
        f"{a}={x!r} with {b}={y!r}"
        for a, b in itertools.combinations(DIMENSIONS, 2) for x in DIMENSIONS[a] for y in DIMENSIONS[b]
        if any(runnable(case) and case[a] == x and case[b] == y for case in product)
        and not any(case[a] == x and case[b] == y for case in CASES)
    ]
    assert missing == [], "pairs of values no case has"
    assert all(runnable(case) for case in CASES)
    for name, values in DIMENSIONS.items():
        assert {case[name] for case in CASES} == set(values), name
    assert len({case_id(case) for case in CASES}) == len(CASES), "test ids are unique"


@pytest.mark.parametrize("case", [pytest.param(case, id=case_id(case)) for case in CASES])
def test_a_redirecting_endpoint_gets_a_clear_error_and_the_decoy_gets_nothing(
    emulator, settings_for, role_supplier, case
):
    caller, step, status, federation, direct = (case[name] for name in DIMENSIONS)
    # jwt: the AWS JWT (the subject token) or the federated token it got from the emulator's OIDC provider.
    route: dict[str, str] = {"impersonation_chain": ""} if direct else {}
    if federation == "jwt":
        route.update(federation=federation, provider_id=emulator.info["jwt_provider_id"])
    with listening_decoy() as (decoy_port, received):
        decoy = f"127.0.0.1:{decoy_port}"
        with redirecting_endpoint(status, f"http://{decoy}/v1/token") as (endpoint, seen):
            if step == "sts_exchange":
                settings = settings_for(sts_endpoint=f"{endpoint}/v1/token", **route)
            else:
                settings = settings_for(iam_endpoint=endpoint, **route)
            credentials = get_credentials(settings, role_supplier())
            with pytest.raises(WifExchangeError) as caught:
                CALLERS[caller](credentials)
        assert not received, f"the decoy received: {received[0][:300]!r}"
    error = caught.value
    assert len(seen) == 1, "the endpoint was asked once (a redirect is not retried)"
    assert error.step == step and not error.retryable
    assert f"answered HTTP {status}, a redirect to {decoy}" in error.reason
    assert "never follows a redirect" in error.reason
    assert ("sts_endpoint" if step == "sts_exchange" else "iam_endpoint") in error.fix
    assert credentials.token is None


def test_a_redirect_without_location_is_refused_too(emulator, settings_for, role_supplier):
    with redirecting_endpoint(307, "") as (endpoint, seen):
        credentials = get_credentials(settings_for(sts_endpoint=f"{endpoint}/v1/token"), role_supplier())
        with pytest.raises(WifExchangeError, match="answered HTTP 307") as caught:
            _refresh(credentials)
    assert caught.value.step == "sts_exchange" and len(seen) == 1


def test_the_exchange_transport_is_one_per_process_and_a_forked_child_makes_its_own(settings_for, role_supplier):
    parent = wif_transport.exchange_transport()
    assert wif_transport.exchange_transport() is parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new transport, and a working exchange through it
        code = 1
        try:
            child = wif_transport.exchange_transport()
            credentials = get_credentials(settings_for(), role_supplier())
            _refresh(credentials)
            code = 0 if child is not parent and credentials.valid else 2
        finally:
            os.write(write, bytes([code]))
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"\x00" and os.waitstatus_to_exitcode(status) == 0
    assert wif_transport.exchange_transport() is parent


def test_the_error_names_only_the_redirect_host_never_credentials_in_its_url(emulator, settings_for, role_supplier):
    with listening_decoy() as (decoy_port, received):
        location = f"http://someone:hunter2-secret@127.0.0.1:{decoy_port}/v1/token?key=AIzaSecretKey#frag"
        with redirecting_endpoint(307, location) as (endpoint, _):
            credentials = get_credentials(settings_for(iam_endpoint=endpoint), role_supplier())
            with pytest.raises(WifExchangeError) as caught:
                _refresh(credentials)
        assert not received
    text = str(caught.value) + repr(caught.value)
    assert f"a redirect to 127.0.0.1:{decoy_port}" in text
    for secret in ("someone", "hunter2-secret", "AIzaSecretKey", "frag"):
        assert secret not in text
