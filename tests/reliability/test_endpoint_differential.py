"""Differential proof of the endpoint allow-list: whatever endpoint string a connection holds, if the settings accept
it, the host that the sending libraries will actually connect to is one the allow-list allows.

The oracle does not trust ``config.py``'s parsing: for the URLs the *stored* settings hold (``sts_endpoint``,
``iam_endpoint`` and the generateAccessToken URL built from it) it asks urllib3 (``parse_url``, what requests'
adapter uses to pick the connection pool), requests (a prepared request and the adapter's own connection pool) and
the standard library's ``urlsplit`` (httplib2, http.client) where they would connect, and checks that host with a
small reference predicate (endpoint_oracle.py). Endpoint strings are generated from pieces known to split parsers:
backslashes, percent-escapes, unicode dots and solidi, userinfo, ports, brackets, ``?``/``#``, tabs and newlines,
around allowed and disallowed hosts. ``derandomize=True`` keeps ``make test`` deterministic.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from airflow_provider_gcp_wif.config import WifSettings
from airflow_provider_gcp_wif.errors import WifConfigError

from .endpoint_oracle import (
    ALLOWED_HOSTS,
    AUDIENCE,
    BASE,
    DEPLOYMENT_ALLOWS,
    DISALLOWED_HOSTS,
    FORBIDDEN,
    ROUTES,
    SA,
    SCHEMES,
    connection_targets,
    endpoints,
    extras_for,
    reference_allows,
    reference_host,
    reference_is_loopback,
)


def assert_stored_urls_are_safe(parsed: WifSettings, endpoint: str) -> None:
    for url in (parsed.sts_endpoint, parsed.impersonation_url(SA)):
        for who, host, port in connection_targets(url):
            assert reference_allows(host), f"{endpoint!r} accepted; {who} would connect to {host!r} ({url!r})"
            assert port is None or 1 <= port <= 65535, (endpoint, who, port)
    for stored in (parsed.sts_endpoint, parsed.iam_endpoint):
        assert not FORBIDDEN.search(stored), (endpoint, stored)


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), endpoint=endpoints)
def test_an_accepted_endpoint_only_ever_reaches_an_allowed_host(route, endpoint):
    try:
        parsed = WifSettings.from_extras(extras_for(route, endpoint), allowed_endpoint_hosts=DEPLOYMENT_ALLOWS)
    except WifConfigError:
        return
    assert_stored_urls_are_safe(parsed, endpoint)


UNIVERSES = ["googleapis.com", "GOOGLEAPIS.COM", "googleapis.com.", "googleapis\u3002com", "googleapis\uff0ecom",
             "psc.corp.example", "PSC.corp.example.", "corp.example", "evil.example", "com", "xn--ggle-0nda.com",
             "gооgleapis.com", "p.googleapis.com", ".googleapis.com", "googleapis.com..", "127.0.0.1"]
ALLOW_LISTS = ["", DEPLOYMENT_ALLOWS, "*.psc.corp.example", "PSC.CORP.EXAMPLE.", "sts.corp.example.", " , ,",
               "\u3002psc.corp.example", "localhost", "LOCALHOST.", "127.0.0.1", "127.1", "0:0:0:0:0:0:0:1",
               "*.localhost", "127.9.9.9, [::1]", "2130706433, 0x7f.1"]


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(universe=st.sampled_from(UNIVERSES), allow_list=st.sampled_from(ALLOW_LISTS),
       endpoint=st.one_of(st.none(), endpoints), field=st.sampled_from(["sts_endpoint", "iam_endpoint"]))
def test_universe_domain_and_deployment_allow_list_cannot_be_fooled(universe, allow_list, endpoint, field):
    extras = {**BASE, "universe_domain": universe,
              "audience": AUDIENCE.replace("googleapis.com", universe.lower().rstrip("."))}
    extras.pop("project_number"), extras.pop("pool_id"), extras.pop("provider_id")
    if endpoint is not None:
        extras[field] = endpoint
    try:
        parsed = WifSettings.from_extras(extras, allowed_endpoint_hosts=allow_list)
    except WifConfigError:
        return
    for url in (parsed.sts_endpoint, parsed.impersonation_url(SA)):
        for who, host, _port in connection_targets(url):
            assert reference_allows(host, allow_list, universe.lower().rstrip(".")), (universe, allow_list, endpoint, who, host)


# -- admitted iff Google's or listed: loopback included ------------------------------------------------------------

PLAIN_SCHEMES = ["https://", "http://", "HTTPS://", "HTTP://"]
PLAIN_PORTS = ["", ":443", ":80", ":8443", ":65535"]
PLAIN_PATHS = ["", "/", "/v1/token"]


@settings(max_examples=800, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from(ROUTES), scheme=st.sampled_from(PLAIN_SCHEMES),
       host=st.sampled_from(ALLOWED_HOSTS + DISALLOWED_HOSTS), port=st.sampled_from(PLAIN_PORTS),
       path=st.sampled_from(PLAIN_PATHS), allow_list=st.sampled_from(ALLOW_LISTS))
def test_a_plain_endpoint_is_admitted_iff_its_host_is_googles_or_listed_by_the_deployment(
        route, scheme, host, port, path, allow_list):
    """The converse of the property above, for endpoints in the plain grammar: nothing the reference allows is
    refused, nothing else is admitted. Loopback is no exception (listed exactly as written: ``localhost`` is not
    ``127.0.0.1``), and plain http is admitted only for a listed loopback host."""
    if route.endswith("impersonation_url"):  # the file's URL is <scheme>://<host>/v1/projects/-/...: no path
        scheme, path = scheme.lower(), ""
    endpoint = scheme + host + port + path
    name = reference_host(host)
    expected = (name is not None and reference_allows(host, allow_list)
                and (scheme.lower() == "https://" or reference_is_loopback(name)))
    try:
        WifSettings.from_extras(extras_for(route, endpoint), allowed_endpoint_hosts=allow_list)
    except WifConfigError as err:
        assert not expected, f"{endpoint!r} refused under {allow_list!r}: {err}"
    else:
        assert expected, f"{endpoint!r} admitted under {allow_list!r}"


def test_the_reported_backslash_bypass_is_refused_on_every_route():
    for route in ROUTES:
        endpoint = "https://192.0.2.2\\.googleapis.com" + ("/v1/token" if route.endswith(("sts_endpoint", "url")) else "")
        try:
            parsed = WifSettings.from_extras(extras_for(route, endpoint), allowed_endpoint_hosts="")
        except WifConfigError as err:
            assert err.field in ("sts_endpoint", "iam_endpoint", "credential_config"), err.field
        else:
            raise AssertionError(f"{route}: accepted, stored {parsed.sts_endpoint!r} / {parsed.iam_endpoint!r}")


def test_the_stored_url_is_the_normalised_one_that_was_checked():
    parsed = WifSettings.from_extras({**BASE, "sts_endpoint": "HTTPS://STS.GoogleAPIs.com.:443/v1/token/",
                                      "iam_endpoint": "https://[0:0:0:0:0:0:0:1]:8443/"}, allowed_endpoint_hosts="::1")
    assert parsed.sts_endpoint == "https://sts.googleapis.com/v1/token"
    assert parsed.iam_endpoint == "https://[::1]:8443"
    assert ipaddress.ip_address(parse_url(parsed.iam_endpoint).host.strip("[]")).is_loopback


# -- credentials typed into an endpoint are never echoed -------------------------------------------------------

secrets = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~", min_size=4,
                  max_size=20).map(lambda s: "S3CR3T" + s)


@st.composite
def endpoints_with_a_secret(draw):
    secret = draw(secrets)
    host = draw(st.sampled_from(ALLOWED_HOSTS + DISALLOWED_HOSTS))
    shape = draw(st.sampled_from([
        "{scheme}user:{secret}@{host}/v1/token", "{scheme}{secret}@{host}", "{scheme}{host}/v1/token?key={secret}",
        "{scheme}{host}/v1/token#{secret}", "{scheme}{host}?{secret}", "{scheme}a:{secret}@b@{host}/v1/token",
        "{scheme}{host}\\@{secret}@x/v1/token", "{scheme}u:{secret}@{host}\\.googleapis.com/?k={secret}#{secret}",
        "{scheme}[{secret}@{host}", "{scheme}{host}:{secret}@x/", "{scheme}{host}/v1/token?\u3002={secret}",
        "{secret}@{scheme}{host}/v1/token", "{secret}:x@{scheme}{host}@y", "{scheme}u:{secret}@{host}/" + "a" * 3000,
        "{scheme}{host}/" + "a" * 3000 + "?key={secret}",
    ]))
    return secret, shape.format(scheme=draw(st.sampled_from(SCHEMES)), secret=secret, host=host)


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(route=st.sampled_from([*ROUTES, "scope"]), case=endpoints_with_a_secret())
def test_a_credential_in_an_endpoint_is_never_echoed_in_the_error_or_its_traceback(route, case):
    import traceback

    secret, endpoint = case
    extras = {**BASE, "scope": endpoint} if route == "scope" else extras_for(route, endpoint)
    try:
        parsed = WifSettings.from_extras(extras, conn_id="c", allowed_endpoint_hosts=DEPLOYMENT_ALLOWS)
    except WifConfigError as err:
        shown = [str(err), repr(err), "".join(traceback.format_exception(err)), err.problem, err.fix]
        assert not any(secret in text for text in shown), (route, endpoint, str(err))
    else:
        raise AssertionError(f"{route}: {endpoint!r} accepted as {parsed!r}")
