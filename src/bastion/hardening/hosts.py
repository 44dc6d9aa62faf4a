"""Strict Host parsing and ALLOWED_HOSTS matching (Django's ALLOWED_HOSTS).

A Host header decides which site a request is for, what absolute URLs the
app builds (password-reset links, redirects) and what "same origin" means to
the CSRF check. So it is parsed strictly, and an unknown or malformed one is
refused with 400 before any handler sees it.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["AllowedHosts", "HostError", "HostReason", "ParsedHost", "parse_host"]

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_PORT = re.compile(r"[0-9]{1,5}")


class HostReason(enum.Enum):
    """Why a request's Host was refused: the name is logged and counted, the value shown.

    Stable names, like :class:`bastion.hardening.Reason` for CSRF: metrics
    labels, log lines and the 400 body all carry the name.
    """

    NO_HOST = "missing Host header"
    SEVERAL_HOSTS = "several Host headers"
    MALFORMED_HOST = "malformed Host header"
    HOST_NOT_ALLOWED = "Host is not in ALLOWED_HOSTS"


class HostError(ValueError):
    """The Host value is malformed; the message is safe to show the client."""


@dataclass(frozen=True, slots=True)
class ParsedHost:
    """A validated host: lower-case name (IPv6 without brackets) and optional port."""

    name: str
    port: int | None
    is_ipv6: bool = False


def _parse_port(text: str) -> int:
    if not _PORT.fullmatch(text) or not 0 < int(text) <= 65535:
        raise HostError("invalid port in Host header")
    return int(text)


def parse_host(value: str) -> ParsedHost:
    """Parse ``name[:port]`` or ``[ipv6][:port]``; raise HostError on anything else.

    Refused: empty values, several hosts, paths, user info, whitespace, bad
    characters, empty or over-long labels, and ports outside 1..65535.
    """
    if not value or len(value) > 261:
        raise HostError("missing or over-long Host header")
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise HostError("unterminated IPv6 literal in Host header")
        literal, rest = value[1:end], value[end + 1 :]
        try:
            address = ipaddress.IPv6Address(literal)
        except ValueError:
            raise HostError("invalid IPv6 literal in Host header") from None
        if address.scope_id is not None:
            raise HostError("zone identifiers are not allowed in Host header")
        if rest and not rest.startswith(":"):
            raise HostError("unexpected characters after IPv6 literal in Host header")
        port = _parse_port(rest[1:]) if rest else None
        return ParsedHost(address.compressed, port, is_ipv6=True)
    name, sep, port_text = value.partition(":")
    port = _parse_port(port_text) if sep else None
    name = name.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        raise HostError("invalid host name in Host header")
    if not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise HostError("invalid host name in Host header")
    return ParsedHost(name, port)


def _normalise_pattern(pattern: str) -> str:
    pattern = pattern.strip().lower()
    literal = pattern[1:-1] if pattern.startswith("[") and pattern.endswith("]") else pattern
    if ":" in literal:
        try:
            return ipaddress.IPv6Address(literal).compressed
        except ValueError:
            return pattern
    return pattern.rstrip(".") if pattern not in (".", "*") else pattern


class AllowedHosts:
    """Exact names, ``.example.com`` (the domain and every subdomain) and ``*``.

    Ports are not part of the match, as in Django: a deployment that answers
    on several ports lists its names once.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        normalised = {_normalise_pattern(p) for p in patterns if p.strip()}
        self.allow_all = "*" in normalised
        self.exact = frozenset(p for p in normalised if not p.startswith("."))
        self.suffixes = tuple(sorted(p for p in normalised if p.startswith(".") and len(p) > 1))

    def __contains__(self, host: ParsedHost) -> bool:
        if self.allow_all or host.name in self.exact:
            return True
        if host.is_ipv6:
            return False
        return any(host.name == s[1:] or host.name.endswith(s) for s in self.suffixes)
