"""The endpoint allow-list's differential oracle (test_endpoint_differential.py,
test_secret_manager_endpoint_differential.py): endpoint strings generated from pieces known to split parsers, where
urllib3, requests and the standard library would really connect for a URL, and a small reference predicate of the
hosts the allow-list should allow, written independently of ``config.py``: Google's (the universe domain and its
sub-domains) or listed by the deployment; loopback is no exception (a loopback host is admitted only when the
deployment lists it, exactly as written: ``localhost`` is not ``127.0.0.1``)."""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

import requests
import requests.adapters
from hypothesis import strategies as st
from urllib3.util import parse_url

from airflow_provider_gcp_wif.constants import AWS_SUBJECT_TOKEN_TYPE

AUDIENCE = "//iam.googleapis.com/projects/734501234567/locations/global/workloadIdentityPools/aws-pool/providers/aws-provider"
SA = "airflow-wif@wif-demo-project.iam.gserviceaccount.com"
BASE = {"project_number": "734501234567", "pool_id": "aws-pool", "provider_id": "aws-provider",
        "impersonation_chain": SA}
# What the deployment's [gcp_wif] allowed_endpoint_hosts says: two corporate names and two loopback addresses (an
# emulator's, a local proxy's); other loopback hosts (127.9.9.9, localhost) are not listed.
DEPLOYMENT_ALLOWS = "sts.corp.example, .psc.corp.example, 127.0.0.1, [::1]"

ALLOWED_HOSTS = ["sts.googleapis.com", "iamcredentials.googleapis.com", "x.p.googleapis.com", "googleapis.com",
                 "STS.GoogleAPIs.com", "sts.googleapis.com.", "127.0.0.1", "[::1]", "[0:0:0:0:0:0:0:1]",
                 "sts.corp.example", "a.psc.corp.example"]
DISALLOWED_HOSTS = ["192.0.2.2", "evil.example", "tokens.attacker.example", "googleapis.com.evil.example",
                    "corp.example", "psc.corp.example.evil", "10.0.0.5", "[::ffff:192.0.2.2]", "[2001:db8::1]",
                    "2130706433", "0x7f.1", "127.1", "evil", "xn--ggle-0nda.com", "gооgleapis.com",
                    "127.9.9.9", "localhost", "LOCALHOST", "localhost.", "127.0.0.2", "[::ffff:127.0.0.1]",
                    "127.000.000.001", "0x7f000001", "0177.0.0.1", "localhost.localdomain"]
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

def reference_host(host: str) -> str | None:
    """``host`` (as a URL names it, or as an allow-list entry writes it) the way the allow-list compares it:
    lowercase, no trailing dot, an IPv6 literal compressed without brackets, an IPv4 address only as four plain
    decimal octets; ``None`` when it is none of these (``127.1``, ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and
    other forms resolvers read as addresses, or a Unicode name)."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.IPv6Address(host[1:-1]).compressed
        except ValueError:
            return None
    host = host[:-1] if host.endswith(".") else host
    labels = host.split(".")
    if not all(re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", label) for label in labels):
        if ":" in host:
            try:
                return ipaddress.IPv6Address(host).compressed
            except ValueError:
                return None
        return None
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        quad = len(labels) == 4 and all(re.fullmatch(r"0|[1-9][0-9]{0,2}", label) for label in labels)
        return host if quad and all(int(label) <= 255 for label in labels) else None
    return host


def reference_entries(allow_list: str) -> set[str]:
    """An allow-list read the obvious way: comma separated, ``*.x`` = ``.x`` (``x`` and its sub-domains)."""
    entries = set()
    for item in allow_list.split(","):
        item = item.strip().lower()
        suffix = item.startswith(("*.", "."))
        name = reference_host(item.lstrip("*").lstrip(".")) if item.strip("*.") else None
        if name is not None:
            entries.add("." + name if suffix else name)
    return entries


def reference_is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8, ::1 (of a host already through :func:`reference_host`)."""
    return host == "localhost" or host == "::1" or (re.fullmatch(r"127(\.[0-9]{1,3}){3}", host) is not None)


def reference_allows(host: str, allow_list: str = DEPLOYMENT_ALLOWS, universe: str = "googleapis.com") -> bool:
    """Google's domain (the universe and its sub-domains, which include the *.p. PSC names; a universe other than
    googleapis.com only when listed) or what the deployment lists; nothing else, loopback included."""
    name = reference_host(host)
    if name is None:
        return False
    entries = reference_entries(allow_list)

    def listed(value: str) -> bool:
        return any(value == e or (e.startswith(".") and (value.endswith(e) or value == e[1:])) for e in entries)

    if name == universe or name.endswith("." + universe):
        return universe == "googleapis.com" or listed(universe)
    return listed(name)


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
