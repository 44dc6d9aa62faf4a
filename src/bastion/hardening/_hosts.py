"""ALLOWED_HOSTS matching (Django's ALLOWED_HOSTS) and the reasons a Host is refused.

The Host value itself is parsed by :func:`bastion._parse.origins.parse_host`
(strictly: an unknown or malformed one is refused with 400 before any handler
sees it); this module decides whether the parsed host is one of ours.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable

from bastion._parse.origins import ParsedHost


class HostReason(enum.Enum):
    """Why a request's Host was refused: the name is logged and counted, the value shown.

    Stable names, like :class:`bastion.hardening._csrf.Reason` for CSRF: metrics
    labels, log lines and the 400 body all carry the name.
    """

    NO_HOST = "missing Host header"
    SEVERAL_HOSTS = "several Host headers"
    MALFORMED_HOST = "malformed Host header"
    HOST_NOT_ALLOWED = "Host is not in ALLOWED_HOSTS"


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
