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
    """``localhost``, 127.0.0.0/8 or ``::1`` (brackets allowed)."""
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
