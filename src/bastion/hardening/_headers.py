"""Security headers at the app, as defence in depth for when no proxy adds them.

These are the headers Django's SecurityMiddleware (and its CSP and COOP
settings) owned. They are added to a response only when the app did not set
the header itself, so a route that needs, say, a looser CSP can send its own.
HSTS is sent only on https (as resolved through trusted proxies), because on
plain http it is meaningless and browsers ignore it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bastion._driver import add_missing

DEFAULT_SECURITY_HEADERS: Mapping[str, str] = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "permissions-policy": (
        "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
        "microphone=(), payment=(), usb=(), browsing-topics=()"
    ),
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "content-security-policy": (
        # Deny by default, then allow exactly what a server-rendered app uses.
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}

DEFAULT_HSTS = "max-age=31536000; includeSubDomains"


@dataclass(frozen=True, slots=True)
class SecurityHeaders:
    """The encoded headers, computed once; ``add`` runs per response."""

    always: tuple[tuple[bytes, bytes], ...]
    hsts: tuple[bytes, bytes] | None
    #: The names ``add`` may append, to tell at once whether the app set any of them.
    names: frozenset[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = {name for name, _ in self.always}
        if self.hsts is not None:
            names.add(self.hsts[0])
        object.__setattr__(self, "names", frozenset(names))

    @classmethod
    def build(
        cls, overrides: Mapping[str, str | None] | None = None, hsts: str | None = DEFAULT_HSTS
    ) -> SecurityHeaders:
        """Defaults plus ``overrides``; an override of None drops that header."""
        merged: dict[str, str | None] = dict(DEFAULT_SECURITY_HEADERS)
        for name, value in (overrides or {}).items():
            merged[name.lower()] = value
        always = tuple(
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in merged.items()
            if value is not None
        )
        hsts_header = (b"strict-transport-security", hsts.encode("latin-1")) if hsts else None
        return cls(always, hsts_header)

    def for_response(self, https: bool) -> tuple[tuple[bytes, bytes], ...]:
        """What a response gets unless the app set it: HSTS on https only."""
        if https and self.hsts is not None:
            return (*self.always, self.hsts)
        return self.always

    def add(self, headers: Iterable[tuple[bytes, bytes]], https: bool) -> list[tuple[bytes, bytes]]:
        """``headers`` plus each security header the app did not set itself.

        The same rule as the driver's one pass over a response's headers
        (:func:`bastion._driver.add_missing`), for code outside a request.
        """
        return add_missing(headers, self.for_response(https), self.names)
