"""Differential proof of the endpoint allow-list: whatever endpoint string a connection holds, if the settings accept
it, the host that the sending libraries will actually connect to is one the allow-list allows.

The oracle does not trust ``config.py``'s parsing: for the URLs the *stored* settings hold (``sts_endpoint``,
``iam_endpoint`` and the generateAccessToken URL built from it) it asks urllib3 (``parse_url``, what requests'
adapter uses to pick the connection pool), requests (a prepared request and the adapter's own connection pool) and
the standard library's ``urlsplit`` (httplib2, http.client) where they would connect, and checks that host with a
small reference predicate written here. Endpoint strings are generated from pieces known to split parsers:
backslashes, percent-escapes, unicode dots and solidi, userinfo, ports, brackets, ``?``/``#``, tabs and newlines,
around allowed and disallowed hosts. ``derandomize=True`` keeps ``make test`` deterministic.
"""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

import requests
import requests.adapters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from airflow_provider_gcp_wif.config import AWS_SUBJECT_TOKEN_TYPE, WifSettings
from airflow_provider_gcp_wif.errors import WifConfigError

AUDIENCE = "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider"
SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
BASE = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider",
        "impersonation_chain": SA}
DEPLOYMENT_ALLOWS = "sts.corp.example, .psc.corp.example"  # what the deployment's [gcp_wif] allowed_endpoint_hosts says

ALLOWED_HOSTS = ["sts.googleapis.com", "iamcredentials.googleapis.com", "x.p.googleapis.com", "googleapis.com",
                 "STS.GoogleAPIs.com", "sts.googleapis.com.", "127.0.0.1", "127.9.9.9", "localhost", "[::1]",
                 "sts.corp.example", "a.psc.corp.example"]
DISALLOWED_HOSTS = ["192.0.2.2", "evil.example", "tokens.attacker.example", "googleapis.com.evil.example",
                    "corp.example", "psc.corp.example.evil", "10.0.0.5", "[::ffff:192.0.2.2]", "[2001:db8::1]",
                    "2130706433", "0x7f.1", "127.1", "evil", "xn--ggle-0nda.com", "gооgleapis.com"]
# Characters and escapes on which parsers disagree about where the authority ends (or which NFKC/IDNA rewrite).
SEPARATORS = ["\\", "%5c", "%5C", "%2f", "%2F", "%2e", "%40", "%25", "%", "@", ":", "/", "//", "?", "#", ".",
              "\u3002", "\uff0e", "\uff61", "\uff0f", "\u2215", "\u2044", "\uff3c", "\uff20", "\uff03", "\uff1f",
              "\t", "\n", "\r", " ", "\x00", "\x7f", "\u200b", "[", "]", ";", ",", "&", "=", "+", "~", "'", '"']
SCHEMES = ["https://", "http://", "HTTPS://", "https:", "https:/", "https:\\\\", "https:///", "ftp://", "", "//",
           " https://", "https://\t"]
PORTS = ["", "", "", ":443", ":8443", ":0", ":65535", ":65536", ":080", ":", ":-1", ":+80", ": 80", ":1\u0661",
         ":99999999999"]
PATHS = ["", "", "/v1/token", "/", "/v1/token/", "/a/../v1/token", "/%2e%2e/x", "/x\\y", "/v1/token?key=1",
         "/v1/token#frag", "/\u2215v1", "/v1/ token"]


def host_part() -> st.SearchStrategy[str]:
    """Two hosts glued with a separator in between (the shape of every known bypass), or one host. Hypothesis
    starts from (and shrinks towards) the first choices, so the first example tried is the reported bypass
    ``192.0.2.2`` + ``\\`` + ``sts.googleapis.com``."""
    single = st.sampled_from(ALLOWED_HOSTS + DISALLOWED_HOSTS)
    glued = st.tuples(st.sampled_from(DISALLOWED_HOSTS + ALLOWED_HOSTS), st.sampled_from(SEPARATORS),
                      st.sampled_from(["", "."]), st.sampled_from(ALLOWED_HOSTS)).map("".join)
    return st.one_of(glued, single)


userinfo = st.sampled_from(["", "", "", "user:pass@", "sts.googleapis.com@", "@", "evil.example%40", "a:b@c@"])
endpoints = st.tuples(st.sampled_from(SCHEMES), userinfo, host_part(), st.sampled_from(PORTS),
                      st.sampled_from(PATHS), st.text(alphabet="".join(SEPARATORS) + "ab.", max_size=3)).map(
    lambda parts: "".join(parts[:5]) + (parts[5] if len(parts[5]) == 1 else ""))

ROUTES = ["sts_endpoint", "iam_endpoint", "credential_config.token_url",
          "credential_config.service_account_impersonation_url"]


def extras_for(route: str, endpoint: str) -> dict:
    if route in ("sts_endpoint", "iam_endpoint"):
        return {**BASE, route: endpoint}
    config = {"type": "external_account", "audience": AUDIENCE, "subject_token_type": AWS_SUBJECT_TOKEN_TYPE}
    if route.endswith("token_url"):
        config["token_url"] = endpoint
    else:
        config["service_account_impersonation_url"] = (
            f"{endpoint.rstrip('/')}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken")
    return {"credential_config": json.dumps(config)}


# -- the independent reference ------------------------------------------------------------------------------------

def reference_allows(host: str) -> bool:
    """Google's domain (with its *.p. PSC names), loopback, or what the deployment lists; nothing else."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "::1" or host == "localhost":
        return True
    if re.fullmatch(r"127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", host):
        return all(int(octet) <= 255 for octet in host.split("."))
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", host):
        return False
    return (host == "googleapis.com" or host.endswith(".googleapis.com") or host == "sts.corp.example"
            or host.endswith(".psc.corp.example"))


FORBIDDEN = re.compile(r"[\\@?#%\s\x00-\x1f\x7f]|[^\x00-\x7f]")


def connection_targets(url: str) -> list[tuple[str, str, int | None]]:
    """(who, host, port) for every library that would send a request to ``url``."""
    targets = []
    parsed = parse_url(url)
    targets.append(("urllib3.parse_url", (parsed.host or "").lower(), parsed.port))
    prepared = requests.Request("POST", url).prepare()
    assert prepared.url is not None
    again = parse_url(prepared.url)
    targets.append(("requests.prepare", (again.host or "").lower(), again.port))
    pool = requests.adapters.HTTPAdapter().get_connection_with_tls_context(prepared, verify=True)
    pool_host = pool.host if ":" not in pool.host else f"[{pool.host}]"
    targets.append(("requests.adapter", pool_host.lower(), pool.port))
    std = urlsplit(url)
    std_host = std.hostname or ""
    targets.append(("urllib.parse", f"[{std_host}]" if ":" in std_host else std_host, std.port))
    return targets


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
               "\u3002psc.corp.example"]


def reference_allows_under(host: str, allow_list: str, universe: str) -> bool:
    """As ``reference_allows``, but for a generated deployment allow-list (read the obvious way); a listed
    universe domain allows its sub-domains."""
    entries = {e.strip().lower().lstrip("*").rstrip(".") for e in allow_list.split(",") if e.strip()}

    def listed(name: str) -> bool:
        return any(name == e or (e.startswith(".") and (name.endswith(e) or name == e[1:])) for e in entries)

    bare = host[1:-1] if host.startswith("[") else host
    if reference_allows(host) and not (host == "sts.corp.example" or host.endswith(".psc.corp.example")):
        return True
    if re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", bare) is None:
        return False
    if listed(universe) and (bare == universe or bare.endswith("." + universe)):
        return True
    return listed(bare)


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
            assert reference_allows_under(host, allow_list, universe.lower().rstrip(".")), (universe, allow_list, endpoint, who, host)


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
                                      "iam_endpoint": "https://[0:0:0:0:0:0:0:1]:8443/"}, allowed_endpoint_hosts="")
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
