"""The one trusted-proxy resolver: who the client is, and which scheme it used.

Rate limits, the audit log, scheme detection and CSRF all ask this module, so
the answer is the same everywhere. Forwarded headers are believed only when
the TCP peer is a configured proxy, and ``X-Forwarded-For`` is walked from the
right, skipping trusted hops, so that a client-written left-hand entry is never
taken as truth. From an untrusted peer the headers are ignored, and the first
time that happens a warning says so (it usually means TRUSTED_PROXIES is
missing the proxy's address).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from bastion._parse.networks import parse_proxies

logger = logging.getLogger("bastion.hardening")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ProxyHeaders = Literal["x-forwarded", "forwarded"]


def parse_ip(value: str) -> IPAddress | None:
    """An address from a forwarded header: bare, ``[v6]``, ``[v6]:port`` or ``v4:port``."""
    text = value.strip().strip('"')
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(address: str) -> str:
    """The key to count a client by: IPv4 as is, IPv6 by its /64.

    One IPv6 subscriber usually holds a whole /64, so per-address limits on
    IPv6 are no limit at all. Anything that is not an IP is returned as is.
    """
    parsed = parse_ip(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else address


@dataclass(frozen=True, slots=True)
class Resolution:
    client: str | None
    scheme: str


def _forwarded_pairs(lines: Sequence[str]) -> list[dict[str, str]]:
    """RFC 7239 elements, in order across header lines; malformed pairs are dropped."""
    elements: list[dict[str, str]] = []
    for line in lines:
        for element in line.split(","):
            pairs: dict[str, str] = {}
            for pair in element.split(";"):
                key, sep, val = pair.partition("=")
                if sep:
                    pairs[key.strip().lower()] = val.strip().strip('"')
            elements.append(pairs)
    return elements


class TrustedProxies:
    """Parsed TRUSTED_PROXIES: networks, plus ``unix`` for unix-socket peers."""

    def __init__(self, entries: Iterable[str], header: ProxyHeaders = "x-forwarded") -> None:
        parsed = parse_proxies(entries)
        self.networks = parsed.networks
        self.trust_unix = parsed.unix
        self.header = header
        self._warned = False
        # Behind a proxy every request asks about the same peer and mostly the
        # same hops, and parsing an address costs microseconds; the answers
        # depend only on this instance's networks, so each instance remembers
        # its own, in bounded caches (hops are client-written: a flood of new
        # ones only evicts).
        self._peer_trust = lru_cache(maxsize=1024)(self._check_peer)
        self._hop = lru_cache(maxsize=4096)(self._check_hop)

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def trusts_peer(self, peer: str | None) -> bool:
        """Is this TCP peer (None for a unix socket) one of our proxies?"""
        return self._peer_trust(peer)

    def _check_peer(self, peer: str | None) -> bool:
        if not peer:  # unix socket: the ASGI server reports no address
            return self.trust_unix
        address = parse_ip(peer)
        if address is None:
            return self.trust_unix
        return self.is_trusted(address)

    def _check_hop(self, text: str) -> tuple[str, bool] | None:
        """A forwarded hop as (normalised address, trusted), or None if it is not an address."""
        address = parse_ip(text)
        if address is None:
            return None
        return str(address), self.is_trusted(address)

    def resolve(
        self,
        peer: str | None,
        scheme: str,
        forwarded_for: Sequence[str],
        forwarded_proto: Sequence[str],
        forwarded: Sequence[str],
    ) -> Resolution:
        """The client address and scheme for one request.

        ``forwarded_for``, ``forwarded_proto`` and ``forwarded`` are the raw
        header lines in the order they arrived. Only the family named by
        ``header`` is read: a proxy that sets X-Forwarded-For usually passes a
        client's own ``Forwarded`` through untouched, and the reverse is true
        too, so reading both would let a client pick the one it wrote.
        """
        has_headers = bool(forwarded_for or forwarded_proto or forwarded)
        if not has_headers:
            return Resolution(peer, scheme)
        if not self.trusts_peer(peer):
            if not self._warned:
                self._warned = True
                logger.warning(
                    "ignoring forwarded headers from untrusted peer %s; "
                    "if it is your proxy, add it to TRUSTED_PROXIES",
                    peer or "(unix socket)",
                )
            return Resolution(peer, scheme)
        if self.header == "forwarded":
            elements = _forwarded_pairs(forwarded)
            hops = [e.get("for", "") for e in elements]
            protos = [e.get("proto", "") for e in elements]
        else:
            hops = [h for line in forwarded_for for h in line.split(",")]
            protos = [p for line in forwarded_proto for p in line.split(",")]
        client, index = self._walk(peer, hops)
        return Resolution(client, self._scheme(scheme, protos, index, len(hops)))

    def _walk(self, peer: str | None, hops: list[str]) -> tuple[str | None, int]:
        """Right to left: the first untrusted hop is the client.

        Stops at a malformed entry, answering with the last address a trusted
        proxy vouched for, since whatever stands left of garbage is unverifiable.
        """
        client, index = peer, len(hops)
        for position in range(len(hops) - 1, -1, -1):
            hop = self._hop(hops[position])
            if hop is None:
                break
            client, index = hop[0], position
            if not hop[1]:
                break
        return client, index

    @staticmethod
    def _scheme(current: str, protos: list[str], index: int, hop_count: int) -> str:
        """The proto written alongside the chosen hop, else the nearest proxy's.

        Positions are kept as they arrived (empty entries included), so that
        the n-th proto belongs to the n-th hop whenever the two lists align.
        """
        values = [p.strip().lower() for p in protos]
        if len(values) == hop_count and index < hop_count and values[index]:
            chosen = values[index]
        else:
            present = [v for v in values if v]
            if not present:
                return current
            chosen = present[-1]
        if chosen not in ("http", "https"):
            return current
        if current in ("ws", "wss"):
            return "wss" if chosen == "https" else "ws"
        return chosen
