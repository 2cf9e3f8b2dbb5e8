"""One loopback test (issue #25): the emulator's bind check, the endpoint allow-list's "plain http only to a
listed loopback host" and ``gcp-wif setup``'s plain-http issuer (the emulated AWS) ask the same function, which
agrees with an independent reference on every host spelling and refuses the lookalikes."""

from __future__ import annotations

import re
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_gcp_wif import endpoints
from airflow_provider_gcp_wif.cli.setup_args import SetupArgs, build_setup_plan
from airflow_provider_gcp_wif.endpoints import EndpointRefused, checked_endpoint, parse_allowed_hosts
from airflow_provider_gcp_wif.testing import bind
from airflow_provider_gcp_wif.testing.bind import NonLoopbackHostError, require_loopback

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"


def reference_is_loopback(host: str) -> bool:
    """Written without ``ipaddress``: ``localhost``/``localhost.`` in any case, a dotted quad in 127/8, or an IPv6
    literal whose 16 bytes are ``::1`` (``inet_pton``); brackets and surrounding whitespace ignored."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() in ("localhost", "localhost."):
        return True
    if re.fullmatch(rf"127\.{_OCTET}\.{_OCTET}\.{_OCTET}", host):
        return True
    if not host.isascii() or "%" in host or ":" not in host:
        return False
    try:
        return socket.inet_pton(socket.AF_INET6, host) == socket.inet_pton(socket.AF_INET6, "::1")
    except (OSError, ValueError):
        return False


LOOKALIKES = [
    "localhost.evil.com", "localhost.evil.example.", "evil.localhost", "foo.localhost", "localhost..", "local-host",
    "localhost.localdomain", "127.0.0.1.nip.io", "127.0.0.1.evil.com", "www.127.0.0.1.nip.io", "127.1", "127.0.1",
    "2130706433", "0x7f.1", "0x7f000001", "0177.0.0.1", "127.0.0.01", "017700000001", "::ffff:127.0.0.1",
    "::ffff:7f00:1", "[::ffff:127.0.0.1]", "::127.0.0.1", "::1%lo", "::1%1", "0.0.0.0", "::", "", "[]",
    "128.0.0.1", "126.255.255.255", "10.0.0.1", "\u217cocalhost", "l\u043ecalhost", "localhost\x00",
    "local host", "localhost:80", "127.0.0.1:80", "[::1]:80", "::2", "1::",
]
SPELLINGS = [
    "localhost", "LOCALHOST", "LocalHost", "localhost.", "LOCALHOST.", "127.0.0.1", "127.255.255.254", "127.0.0.2",
    "::1", "[::1]", "0:0:0:0:0:0:0:1", "0::1", "[0:0::1]", " 127.0.0.1 ",
]

ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda q: ".".join(map(str, q)))
loopback_ipv4 = st.tuples(*[st.integers(0, 255)] * 3).map(lambda q: "127." + ".".join(map(str, q)))
cased_localhost = st.tuples(st.lists(st.booleans(), min_size=9, max_size=9), st.booleans()).map(
    lambda t: "".join(c.upper() if up else c for c, up in zip("localhost", t[0], strict=True)) + ("." if t[1] else ""))
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hosts = st.one_of(
    st.sampled_from(LOOKALIKES + SPELLINGS), loopback_ipv4, ipv4, cased_localhost,
    st.tuples(st.sampled_from(["localhost", "127.0.0.1", "LOCALHOST."]), labels).map(lambda t: f"{t[0]}.{t[1]}"),
    st.tuples(labels, st.sampled_from(["localhost", "127.0.0.1"])).map(lambda t: f"{t[0]}.{t[1]}"),
    st.tuples(st.sampled_from(["[", ""]), st.sampled_from(["::1", "0::1", "::ffff:127.0.0.1", "::2", "::"]),
              st.sampled_from(["]", ""])).map("".join),
    st.text(max_size=20),
)


def url_host(host: str) -> str:
    """``host`` as an http URL writes it (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allow_list_admits_plain_http(host: str) -> bool | None:
    """Whether ``http://HOST:8080/`` passes the endpoint check when the deployment lists exactly ``host``; ``None``
    when the endpoint grammar refuses the spelling (or the deployment cannot list it) before loopback is asked."""
    entries = parse_allowed_hosts([host.strip()])
    if not entries:
        return None
    try:
        checked_endpoint(f"http://{url_host(host.strip())}:8080/", allowed=entries, universe="googleapis.com")
    except EndpointRefused as refused:
        if refused.kind == "grammar":
            return None
        assert refused.kind == "http", refused.reason  # listed: only the scheme can be the reason
        return False
    return True


def setup_admits_plain_http_issuer(host: str) -> bool:
    """Whether ``gcp-wif setup --federation jwt --issuer-uri http://HOST:8080/i`` is accepted."""
    from airflow_provider_gcp_wif.errors import WifConfigError

    args = SetupArgs(project_id="wif-demo-project", project_number="734501234567", aws_account_id="123456789012",
                     aws_role_name="wif-role", federation="jwt", issuer_uri=f"http://{url_host(host)}:8080/i")
    try:
        build_setup_plan(args)
    except WifConfigError as err:
        assert err.field == "--issuer-uri", err
        return False
    return True


def emulator_binds(host: str) -> bool:
    try:
        require_loopback(host)
    except NonLoopbackHostError:
        return False
    return True


def test_the_endpoint_check_and_the_emulator_share_one_implementation():
    assert endpoints.is_loopback is bind.is_loopback


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(host=hosts)
def test_both_callers_agree_with_the_reference_on_every_spelling(host):
    expected = reference_is_loopback(host)
    assert bind.is_loopback(host) is expected, host
    assert emulator_binds(host) is expected, host
    admitted = allow_list_admits_plain_http(host)
    if admitted is not None:  # a spelling the endpoint grammar reads as a host
        assert admitted is expected, host
        if host == host.strip():
            assert setup_admits_plain_http_issuer(host) is expected, host


@pytest.mark.parametrize("host", LOOKALIKES)
def test_lookalikes_are_refused_by_every_caller(host):
    assert not bind.is_loopback(host)
    assert not emulator_binds(host)
    assert not allow_list_admits_plain_http(host)  # refused for plain http, or not an endpoint host at all
    assert not setup_admits_plain_http_issuer(host)


@pytest.mark.parametrize("host", SPELLINGS)
def test_loopback_spellings_are_accepted_by_every_caller(host):
    assert bind.is_loopback(host)
    assert emulator_binds(host)
    assert allow_list_admits_plain_http(host) is True
    # setup refuses whitespace in any value before it reads one (what it prints goes into a shell)
    assert setup_admits_plain_http_issuer(host) is (host == host.strip())


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "127.0.0.1", "::1"])
def test_a_loopback_host_is_still_refused_unless_the_deployment_lists_it(host):
    with pytest.raises(EndpointRefused) as refused:
        checked_endpoint(f"http://{url_host(host)}:8080/", allowed=(), universe="googleapis.com")
    assert refused.value.kind == "host"
