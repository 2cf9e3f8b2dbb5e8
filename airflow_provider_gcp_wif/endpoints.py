"""The endpoint grammar and the deployment's allow-list: which URLs a credential may be sent to.

Endpoint allow-list: STS and IAM Credentials endpoints must be Google's (hosts under ``googleapis.com``, which
includes the ``*.p.googleapis.com`` Private Service Connect names) or hosts the *deployment* allows through
``[gcp_wif] allowed_endpoint_hosts`` / ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS`` (comma separated host names or
IP addresses; ``.example.com`` allows sub-domains). A universe domain other than ``googleapis.com`` must be allowed
the same way. A connection editor cannot loosen this, loopback included: a loopback endpoint (an emulator, a local
proxy) is admitted only when the deployment lists its host, because any local user can listen on a loopback port,
and the signed AWS request (or the federated token) is a bearer credential that must reach Google and nothing
else. An entry admits exactly the host it names: ``localhost`` does not admit ``127.0.0.1`` (nor the reverse), and
``127.0.0.1`` admits no other address of 127.0.0.0/8; what a name resolves to is the resolver's business, the
allow-list compares what the URL says. Plain http is admitted only for a listed loopback host.

An endpoint must be a plain ``http(s)://HOST[:PORT][/PATH]``: HOST an ASCII DNS name or an IP literal; no
backslash, whitespace, control or non-ASCII character, no percent-escape, no ``user:password@``, no query or
fragment. The host that is checked is the host urllib3 and requests (the libraries that send the request) parse out
of it, and the settings store that normalised URL, never the string that was typed. Error messages show values
truncated, and URLs with any userinfo, query or fragment redacted.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
from collections.abc import Iterable, Mapping

from airflow_provider_gcp_wif.constants import ALLOWED_HOSTS_ENV, DEFAULT_UNIVERSE_DOMAIN, MAX_TEXT
from airflow_provider_gcp_wif.excerpts import shown, shown_url

# The one loopback test, shared with the emulator's bind check (see its docstring for why it lives there). Here it
# sees only hosts parse_endpoint normalised (lowercase, no trailing dot; 127.1 or 0x7f.1 never arrive).
from airflow_provider_gcp_wif.testing.bind import is_loopback

# The allow-list's warning names the settings module, as it did when the allow-list lived there.
log = logging.getLogger("airflow_provider_gcp_wif.config")

_DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_ENDPOINT_SHAPE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/]*)(?P<path>/.*)?")
_ENDPOINT_PATH = re.compile(r"(/[A-Za-z0-9._~-]*)*")
_DEFAULT_PORTS = {"https": 443, "http": 80}


class BadEndpoint(Exception):
    """Why an endpoint string is refused by :func:`parse_endpoint` (the settings turn it into a ``WifConfigError``,
    :func:`checked_endpoint` into an :class:`EndpointRefused`)."""


def dns_name(value: str) -> str | None:
    """The lowercase ASCII DNS name without a trailing dot, or ``None``. A name whose last label is numeric (or
    hex) must be a plain dotted-quad IPv4 address: resolvers read ``127.1``, ``2130706433`` or ``0x7f.1`` as
    addresses, so such a string is never treated as a name."""
    name = value.lower()
    if name.endswith("."):
        name = name[:-1]
    if not 0 < len(name) <= 253 or not name.isascii():
        return None
    labels = name.split(".")
    if not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit() or labels[-1].startswith("0x"):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            return None
    return name


def parse_endpoint(raw: str) -> tuple[str, str, int | None, str]:
    """``(scheme, host, port, path)`` of an endpoint in the strict grammar; ``host`` is a lowercase DNS name, a
    dotted-quad IPv4 address or a bracketed, compressed IPv6 address; ``port`` is ``None`` for the scheme's default.

    Raises:
        BadEndpoint: saying what is wrong.
    """
    if len(raw) > MAX_TEXT:
        raise BadEndpoint(f"is longer than {MAX_TEXT} characters")
    if not raw.isascii() or any(not " " < ch < "\x7f" for ch in raw):
        raise BadEndpoint("contains whitespace, control or non-ASCII characters")
    if "\\" in raw:
        raise BadEndpoint("contains a backslash")
    match = _ENDPOINT_SHAPE.fullmatch(raw)
    if not match or match["scheme"].lower() not in _DEFAULT_PORTS:
        raise BadEndpoint("is not an http(s) URL")
    if "@" in raw:
        raise BadEndpoint("must not contain credentials (user:password@)")
    if "?" in raw or "#" in raw:
        raise BadEndpoint("must not contain a query or a fragment")
    if "%" in raw:
        raise BadEndpoint("must not contain percent-escapes")
    scheme, authority, path = match["scheme"].lower(), match["authority"], match["path"] or ""
    if authority.startswith("["):
        inside, bracket, rest = authority[1:].partition("]")
        try:
            host = f"[{ipaddress.IPv6Address(inside).compressed}]" if bracket else ""
        except ValueError:
            host = ""
        port_text = rest[1:] if rest.startswith(":") else (None if not rest else "")
    else:
        name, colon, port_text_ = authority.partition(":")
        host = dns_name(name) or ""
        port_text = port_text_ if colon else None
    if not host:
        raise BadEndpoint("does not name a host: use a DNS name or an IP address")
    port: int | None = None
    if port_text is not None:
        if not (port_text.isdigit() and len(port_text) <= 5 and 1 <= int(port_text) <= 65535):
            raise BadEndpoint("has a port that is not a number from 1 to 65535")
        port = int(port_text)
        if port == _DEFAULT_PORTS[scheme]:
            port = None
    if not _ENDPOINT_PATH.fullmatch(path) or any(seg in (".", "..") for seg in path.split("/")):
        raise BadEndpoint("has a path that is not plain /segments of letters, digits and -._~")
    return scheme, host, port, path.rstrip("/")


def _cross_check(url: str, host: str, port: int | None) -> None:
    """Defence in depth: the sending libraries must read the same host and port out of the normalised URL."""
    import requests
    from urllib3.util import parse_url

    prepared = requests.PreparedRequest()
    try:
        prepared.prepare_url(url, None)
        readings = [parse_url(url), parse_url(prepared.url or "")]
    except Exception as err:  # any parser failure: the URL is not the plain one that was checked
        raise BadEndpoint("is not read the same way by the HTTP libraries") from err
    for reading in readings:
        if (reading.host or "").lower() != host or reading.port != port or reading.auth or reading.query:
            raise BadEndpoint("is not read the same way by the HTTP libraries")


class EndpointRefused(ValueError):
    """Why :func:`checked_endpoint` refused a URL.

    Attributes:
        reason: completes a sentence about the endpoint (the URL shown truncated and redacted, or its host).
        kind: ``grammar`` (not a plain URL the sending libraries read as it was checked), ``http`` (plain http to a
            non-loopback host) or ``host`` (not Google's and not listed by the deployment; a loopback host too).
    """

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


def checked_endpoint(raw: str, *, allowed: tuple[str, ...] | None, universe: str) -> tuple[str, str]:
    """``(base, path)`` of an endpoint that any credential may be sent to: the strict grammar
    (:func:`parse_endpoint`), the sending libraries' own reading of its host (urllib3, requests), https unless
    loopback, then the allow-list (``allowed``: the deployment's entries; ``None`` skips it for settings that were
    already checked). A loopback host passes the allow-list only when an entry lists it, so plain http reaches
    only a loopback host the deployment listed. ``base`` is the normalised ``scheme://host[:port]``. Every URL a
    token or signed request goes to passes here: the settings' STS and IAM endpoints, the secrets backend's Secret
    Manager endpoint, the doctor's API URL.

    Raises:
        EndpointRefused: saying why.
    """
    try:
        scheme, host, port, path = parse_endpoint(raw)
        base = f"{scheme}://{host}" + (f":{port}" if port else "")
        _cross_check(base + path, host, port)
    except BadEndpoint as why:
        raise EndpointRefused(f"{shown_url(raw)} {why}", "grammar") from None
    if scheme == "http" and not is_loopback(host):
        raise EndpointRefused(f"{shown_url(raw)} uses plain http for a non-loopback host", "http")
    if allowed is not None and not _host_allowed(host, allowed, universe):
        raise EndpointRefused(f"host {host!r} is not a Google endpoint, and this deployment does not allow it", "host")
    return base, path


def deployment_allowed_hosts(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The deployment's extra endpoint hosts, from ``AIRFLOW__GCP_WIF__ALLOWED_ENDPOINT_HOSTS``.

    Airflow-facing code passes ``conf.get("gcp_wif", "allowed_endpoint_hosts")`` instead, which reads the same
    variable and ``airflow.cfg``."""
    raw = (environ if environ is not None else os.environ).get(ALLOWED_HOSTS_ENV, "")
    return parse_allowed_hosts(raw)


def parse_allowed_hosts(raw: str | Iterable[str] | None) -> tuple[str, ...]:
    """Allow-list entries, normalised like endpoint hosts (lowercase, no trailing dot, ``*.x`` = ``.x``). An entry
    that is not an ASCII DNS name or IP address (e.g. a Unicode name: write its ``xn--`` form) is ignored, with a
    warning."""
    if raw is None:
        return ()
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    entries = []
    for item in items:
        entry = str(item).strip().lower().lstrip("*") if isinstance(item, str) else ""
        if not entry:
            continue
        suffix = entry.startswith(".")
        name = entry[1:] if suffix else entry
        if name.startswith("[") and name.endswith("]"):
            name = name[1:-1]
        try:
            normal: str | None = ipaddress.ip_address(name).compressed
        except ValueError:
            normal = dns_name(name)
        if normal is None:
            log.warning("[gcp_wif] allowed_endpoint_hosts: %s is not a host name or address; ignored.", shown(item))
            continue
        entries.append("." + normal if suffix else normal)
    return tuple(entries)


def _host_allowed(host: str, allowed: tuple[str, ...], universe_domain: str) -> bool:
    """Under the universe domain (googleapis.com, or another the deployment lists), or listed by the deployment.
    Loopback is no exception: a connection editor could otherwise send the credential to any local user's port."""
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == universe_domain or host.endswith("." + universe_domain):
        return universe_domain == DEFAULT_UNIVERSE_DOMAIN or listed(universe_domain, allowed)
    return listed(host, allowed)


def listed(host: str, allowed: tuple[str, ...]) -> bool:
    for entry in allowed:
        if entry.startswith("."):
            if host.endswith(entry) or host == entry[1:]:
                return True
        elif host == entry:
            return True
    return False
