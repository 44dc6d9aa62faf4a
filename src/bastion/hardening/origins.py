"""Serialised origins and TRUSTED_ORIGINS matching.

Origins are compared as (scheme, host, port) triples with the default port
filled in, never as string prefixes: ``https://example.com.evil.com`` and
``https://evil-example.com`` share a prefix with ``https://example.com`` and
must never match it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from bastion.hardening.hosts import HostError, parse_host

__all__ = ["DEFAULT_PORTS", "Origin", "TrustedOrigins", "parse_origin", "parse_url_origin"]

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


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
