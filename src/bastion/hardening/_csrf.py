"""Header-based CSRF protection for unsafe methods (Django's CsrfViewMiddleware).

There is no token to thread through forms. A browser tells the server where a
request comes from, and ``check`` believes the strongest signal present:

1. ``Sec-Fetch-Site``: every current browser sends it, and pages cannot forge
   it. ``same-origin`` passes. Any other value passes only if ``Origin`` is a
   trusted origin.
2. Otherwise ``Origin``: it must be the request's own origin (scheme, host and
   port as resolved through trusted proxies) or a trusted origin. ``null``,
   an empty value and anything that is not a serialised origin fail.
3. Otherwise ``Referer``: its origin must match in the same way. A malformed
   Referer fails, and so does an http Referer on an https site, since a
   network attacker can write the former.
4. None of the three: fail. A browser always sends at least one of them on an
   unsafe request, so an origin-less request is not a browser we can vouch for.

Safe methods (GET, HEAD, OPTIONS, TRACE) are never checked: they must not
change state. Each failure is a :class:`Reason`, which the middleware logs by
name and returns in the 403 body.
"""

from __future__ import annotations

import enum

from bastion._parse.origins import Origin, TrustedOrigins, parse_origin, parse_url_origin

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class Reason(enum.Enum):
    """Why an unsafe request was refused. The value is the short text sent to the client."""

    CROSS_SITE = "Sec-Fetch-Site is not same-origin and Origin is not trusted"
    NULL_ORIGIN = "Origin is null"
    BAD_ORIGIN = "Origin is not a serialised origin"
    ORIGIN_MISMATCH = "Origin does not match the site or a trusted origin"
    BAD_REFERER = "Referer is malformed"
    INSECURE_REFERER = "Referer is http on an https site"
    REFERER_MISMATCH = "Referer does not match the site or a trusted origin"
    NO_ORIGIN = "no Sec-Fetch-Site, Origin or Referer header"
    BAD_HOST = "the request's own origin is unknown (bad Host)"


def _matches(candidate: Origin, own: Origin | None, trusted: TrustedOrigins) -> bool:
    return candidate == own or candidate in trusted


def check(  # noqa: PLR0911 - one early return per rule reads like the rules
    method: str,
    own: Origin | None,
    trusted: TrustedOrigins,
    *,
    sec_fetch_site: str | None,
    origin: str | None,
    referer: str | None,
) -> Reason | None:
    """None if the request may proceed, else the reason to refuse it.

    ``own`` is the request's origin as the client addressed it (resolved
    scheme + Host), or None when the Host could not be parsed.
    """
    if method in SAFE_METHODS:
        return None
    if sec_fetch_site is not None:
        if sec_fetch_site.strip().lower() == "same-origin":
            return None
        parsed = parse_origin(origin) if origin else None
        return None if parsed is not None and parsed in trusted else Reason.CROSS_SITE
    if origin is not None:
        value = origin.strip()
        if value.lower() == "null":
            return Reason.NULL_ORIGIN
        parsed = parse_origin(value)
        if parsed is None:
            return Reason.BAD_ORIGIN
        if own is None and parsed not in trusted:
            return Reason.BAD_HOST
        return None if _matches(parsed, own, trusted) else Reason.ORIGIN_MISMATCH
    if referer is not None:
        parsed = parse_url_origin(referer.strip())
        if parsed is None:
            return Reason.BAD_REFERER
        if own is not None and own.scheme == "https" and parsed.scheme == "http":
            return Reason.INSECURE_REFERER
        if own is None and parsed not in trusted:
            return Reason.BAD_HOST
        return None if _matches(parsed, own, trusted) else Reason.REFERER_MISMATCH
    return Reason.NO_ORIGIN
