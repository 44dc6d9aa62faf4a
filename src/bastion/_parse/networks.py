"""``TRUSTED_PROXIES``: the peers whose forwarded headers are believed.

Entries are IP addresses or CIDR networks (host bits allowed: ``10.1.2.3/8``
means ``10.0.0.0/8``), plus the word ``unix`` for peers on a unix socket,
which the ASGI server reports with no address. The settings validate the
list with :func:`parse_proxies` at start-up and the envelope's resolver
builds its networks with the same call.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

#: The entry that trusts peers on a unix socket.
UNIX = "unix"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ProxyNetworks:
    """The parsed list: networks, and whether unix-socket peers are trusted."""

    networks: tuple[IPNetwork, ...]
    unix: bool


def parse_proxies(entries: Iterable[str]) -> ProxyNetworks:
    """Parse the entries; ValueError naming the first one that is not an IP, CIDR or ``unix``."""
    networks: list[IPNetwork] = []
    unix = False
    for raw in entries:
        entry = raw.strip()
        if entry.lower() == UNIX:
            unix = True
        elif entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"expected IPs, CIDRs or 'unix', got {raw!r}") from None
    return ProxyNetworks(tuple(networks), unix)
