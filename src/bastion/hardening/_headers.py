"""Security headers at the app, as defence in depth for when no proxy adds them.

These are the headers Django's SecurityMiddleware (and its CSP and COOP
settings) owned. They are added to a response only when the app did not set
the header itself, so a route that needs, say, a looser CSP can send its own.
HSTS is sent only on https (as resolved through trusted proxies), because on
plain http it is meaningless and browsers ignore it.

A part of the site may need other values than the rest: FastAPI's ``/docs``
runs an inline script that the default CSP refuses. ``path_headers`` gives
overrides by path prefix (:class:`PathRule`), on top of the app-wide ones;
the longest matching prefix wins, so ``/docs/oauth2-redirect`` can differ
again from ``/docs``. Names and values are checked when the envelope is
built (:class:`~bastion.config.ConfigError`), not when a response is sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bastion._driver import PathRule, add_missing
from bastion.config import ConfigError

#: Header overrides: a name (any case) and its value, or None to drop the header.
HeaderOverrides = Mapping[str, str | None]
#: Header overrides by path prefix (``{"/docs": {"Content-Security-Policy": "..."}}``).
PathHeaders = Mapping[str, HeaderOverrides]

#: An HTTP field name (RFC 9110 ``token``).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A field value bastion will send: visible ASCII and spaces, no line break (no header injection).
_VALUE = re.compile(r"[\x20-\x7e]*")
#: A path prefix: absolute, with no query, fragment, space or control character.
_PREFIX = re.compile(r"/[^?#\s\x00-\x1f\x7f]*")

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
        cls, overrides: HeaderOverrides | None = None, hsts: str | None = DEFAULT_HSTS
    ) -> SecurityHeaders:
        """Defaults plus ``overrides``; an override of None drops that header."""
        merged: dict[str, str | None] = dict(DEFAULT_SECURITY_HEADERS)
        for name, value in check_overrides(overrides or {}, "headers").items():
            merged[name] = value
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


def check_overrides(overrides: HeaderOverrides, where: str) -> dict[str, str | None]:
    """``overrides`` with lower-case names, or a ConfigError naming the first bad entry."""
    checked: dict[str, str | None] = {}
    for name, value in overrides.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigError(f"{where}: {name!r} is not a header name")
        if value is not None and (not isinstance(value, str) or not _VALUE.fullmatch(value)):
            raise ConfigError(
                f"{where}: the value of {name} must be printable ASCII on one line, or None"
            )
        checked[name.lower()] = value
    return checked


def path_rules(
    path_headers: PathHeaders,
    overrides: HeaderOverrides | None = None,
    hsts: str | None = DEFAULT_HSTS,
) -> tuple[PathRule, ...]:
    """The driver's rules for ``path_headers``, longest prefix first.

    Each prefix gets the defaults, then the app-wide ``overrides``, then its
    own; only the longest matching prefix applies to a request. A prefix
    matches by path segment: ``/docs`` covers ``/docs`` and ``/docs/x``, not
    ``/docsx`` (a prefix that ends in ``/`` covers only what is below it).
    """
    rules: list[PathRule] = []
    app_wide = check_overrides(overrides or {}, "headers")
    for prefix, own in path_headers.items():
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ConfigError(
                f"path_headers: {prefix!r} is not a path prefix (expected /something, "
                "with no query or fragment)"
            )
        if not isinstance(own, Mapping):
            raise ConfigError(f"path_headers: {prefix}: expected a mapping of header overrides")
        checked = check_overrides(own, f"path_headers[{prefix!r}]")
        headers = SecurityHeaders.build({**app_wide, **checked}, hsts)
        below = prefix if prefix.endswith("/") else prefix + "/"
        rules.append(
            PathRule(prefix, below, headers.for_response(False), headers.for_response(True))
        )
    rules.sort(key=lambda rule: len(rule.below), reverse=True)
    return tuple(rules)
