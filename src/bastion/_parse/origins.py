"""Hosts and origins: strict Host parsing, serialised origins, TRUSTED_ORIGINS matching.

A Host header decides which site a request is for, what absolute URLs the
app builds (password-reset links, redirects) and what "same origin" means to
the CSRF check. So it is parsed strictly, and an unknown or malformed one is
refused with 400 before any handler sees it (``bastion.hardening``).

Origins are compared as (scheme, host, port) triples with the default port
filled in, never as string prefixes: ``https://example.com.evil.com`` and
``https://evil-example.com`` share a prefix with ``https://example.com`` and
must never match it.

One module for both because an origin's host is a Host: the settings
validate ``TRUSTED_ORIGINS`` with :class:`TrustedOrigins` at start-up, and
the envelope matches requests with the same object.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_PORT = re.compile(r"[0-9]{1,5}")


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


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str  # lower case; IPv6 without brackets
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS.get(self.scheme)
        return (
            f"{self.scheme}://{host}"
            if self.port == default
            else f"{self.scheme}://{host}:{self.port}"
        )


def _from_parts(scheme: str, netloc: str) -> Origin | None:
    scheme = scheme.lower()
    if scheme not in ("http", "https") or "@" in netloc:
        return None
    try:
        host = parse_host(netloc)
    except HostError:
        return None
    return Origin(scheme, host.name, host.port if host.port is not None else DEFAULT_PORTS[scheme])


def parse_origin(value: str) -> Origin | None:
    """An ``Origin`` header value (scheme://host[:port], nothing more), or None.

    ``null``, the empty string, a trailing slash or path, user info and
    non-http(s) schemes are all "not a serialised origin" here.
    """
    scheme, sep, netloc = value.partition("://")
    if not sep or not netloc or any(c in netloc for c in "/?#\\ \t"):
        return None
    return _from_parts(scheme, netloc)


def parse_url_origin(value: str) -> Origin | None:
    """The origin of an absolute http(s) URL such as a ``Referer``, or None if malformed."""
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if not parts.netloc:
        return None
    return _from_parts(parts.scheme, parts.netloc)


@dataclass(frozen=True, slots=True)
class _Wildcard:
    scheme: str
    suffix: str  # ".example.com"
    port: int


class TrustedOrigins:
    """Exact origins plus ``scheme://*.example.com[:port]`` wildcards.

    A wildcard matches any host with at least one more label in front of the
    domain (``a.example.com``, ``a.b.example.com``), on the same scheme and
    port; it does not match the bare domain, which is listed on its own.
    """

    def __init__(self, origins: Iterable[str]) -> None:
        exact: set[Origin] = set()
        wildcards: list[_Wildcard] = []
        for raw in origins:
            text = raw.strip().rstrip("/")
            if not text:
                continue
            scheme, _, rest = text.partition("://")
            if rest.startswith("*."):
                parsed = parse_origin(f"{scheme}://{rest[2:]}")
                if parsed is None:
                    raise ValueError(f"not an origin pattern: {raw!r}")
                wildcards.append(_Wildcard(parsed.scheme, "." + parsed.host, parsed.port))
                continue
            origin = parse_origin(text)
            if origin is None:
                raise ValueError(f"not an origin: {raw!r}")
            exact.add(origin)
        self.exact = frozenset(exact)
        self.wildcards = tuple(wildcards)

    def __contains__(self, origin: Origin) -> bool:
        if origin in self.exact:
            return True
        return any(
            origin.scheme == w.scheme
            and origin.port == w.port
            and origin.host.endswith(w.suffix)
            and len(origin.host) > len(w.suffix)
            for w in self.wildcards
        )
