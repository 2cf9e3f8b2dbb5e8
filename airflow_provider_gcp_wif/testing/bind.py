"""Where the emulator may listen: loopback only, unless the caller explicitly allows more.

The emulator mints Google tokens for anyone who asks and serves Cloud Storage without authentication; on a network
interface it would do that for the whole network. ``0.0.0.0``, ``::``, an empty host or any other non-loopback
address is refused unless ``allow_non_loopback`` (``--allow-non-loopback``) says the network is private, e.g. a
container's own network.
"""

from __future__ import annotations

import ipaddress

ALLOW_FLAG = "--allow-non-loopback"


class NonLoopbackHostError(ValueError):
    """The emulator was asked to listen on a non-loopback address without ``allow_non_loopback``."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback interface: the project's one loopback test.

    Both places that ask use this function: the emulator's bind check (:func:`require_loopback`) and the provider's
    endpoint check (``airflow_provider_gcp_wif.endpoints.checked_endpoint``: plain http only to a loopback host, and
    only when the deployment lists it). It lives here because the emulator imports nothing of the provider, while
    the provider may import this module: it needs the standard library only, and importing
    ``airflow_provider_gcp_wif.testing`` loads plain data (``defaults``), nothing of moto, werkzeug or requests.

    Loopback (surrounding whitespace and ``[...]`` brackets ignored):

    * ``localhost`` in any case (DNS names are case-insensitive), also in its fully qualified form ``localhost.``;
    * an IPv4 address of 127.0.0.0/8 written as a dotted quad;
    * ``::1`` in any IPv6 spelling (``0:0:0:0:0:0:0:1``, ``0::1``).

    Not loopback, though some reach it: other names (``foo.localhost``, ``localhost.evil.example``,
    ``127.0.0.1.nip.io``), the resolver's shorthand numbers (``127.1``, ``2130706433``, ``0x7f.1``, leading zeros),
    IPv4-mapped or -compatible IPv6 (``::ffff:127.0.0.1``, ``::127.0.0.1``), a scoped ``::1%lo``, and the wildcard
    addresses (``0.0.0.0``, ``::``). Refusing a spelling that does reach loopback costs a caller nothing (write
    ``127.0.0.1``); counting one that does not would let the emulator listen on a network, or a credential travel
    over plain http off the machine, so the test errs on the side of "no".
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return address in ipaddress.IPv4Network("127.0.0.0/8")
    return address == ipaddress.IPv6Address("::1")


def require_loopback(host: str, allow_non_loopback: bool = False) -> None:
    """Raises :class:`NonLoopbackHostError` for a non-loopback ``host`` unless ``allow_non_loopback``."""
    if allow_non_loopback or is_loopback(host):
        return
    raise NonLoopbackHostError(
        f"refusing to listen on {host[:100]!r}: the emulator mints Google tokens for anyone and serves Cloud "
        "Storage without authentication, so it listens on loopback only (127.0.0.1, ::1, localhost). Pass "
        f"{ALLOW_FLAG} (allow_non_loopback=True) only where the network is private to you, e.g. a container's own "
        "network."
    )
