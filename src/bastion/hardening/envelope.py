"""The whole request-hardening chain as one pure ASGI middleware.

Order matters and is fixed here: resolve the client and scheme through
trusted proxies first (everything after depends on them), then refuse unknown
hosts (400), then refuse cross-site unsafe requests (403), and finally add
security headers to whatever the app answers. The request headers are read
in one pass and shared by every step, because this code runs on every request.

The resolved client and scheme are written into the scope in place (as
uvicorn's proxy-headers middleware does) rather than into a copy, so that
the request observer around the envelope logs the real client IP.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.config import Settings, get_settings
from bastion.hardening import csrf
from bastion.hardening.headers import DEFAULT_HSTS, SecurityHeaders
from bastion.hardening.hosts import AllowedHosts, HostReason
from bastion.hardening.proxy import TrustedProxies
from bastion.hardening.refusals import ErrorPage, Refusal, csrf_refusal, host_refusal, render
from bastion.parse.origins import (
    DEFAULT_PORTS,
    HostError,
    Origin,
    ParsedHost,
    TrustedOrigins,
    parse_host,
)

__all__ = ["DEV_HOSTS", "Envelope", "EnvelopeConfig", "RejectHook", "envelope"]

logger = logging.getLogger("bastion.hardening")

DEV_HOSTS = ("localhost", "127.0.0.1", "[::1]", ".localhost")

#: Called with ("host", reason) or ("csrf", reason name) on each refusal (metrics hook).
RejectHook = Callable[[str, str], None]


class _PathSet:
    """Segment-aware prefixes: ``/api/health`` covers ``/api/health/live``, not ``/api/healthz``.

    Prepared once, matched on every request: a path matches when it equals a
    prefix or starts with it followed by a slash, and ``str.startswith`` with
    a tuple does the second test in C.
    """

    __slots__ = ("exact", "starts")

    def __init__(self, prefixes: Iterable[str]) -> None:
        listed = tuple(prefixes)
        self.exact = frozenset(listed)
        self.starts = tuple(p if p.endswith("/") else p + "/" for p in listed)

    def matches(self, path: str) -> bool:
        return path in self.exact or path.startswith(self.starts)


@dataclass(frozen=True)
class EnvelopeConfig:
    """Everything the chain needs, parsed once at start-up."""

    allowed_hosts: AllowedHosts
    trusted_origins: TrustedOrigins
    trusted_proxies: TrustedProxies
    security_headers: SecurityHeaders
    host_exempt_paths: tuple[str, ...] = ("/api/health",)
    csrf_exempt_paths: tuple[str, ...] = ()
    on_reject: RejectHook | None = field(default=None, compare=False)
    #: APP_URL's origin and host, for the hints of refusals.
    site: str = "http://localhost:8000"
    site_host: str = "localhost"
    #: The app's own HTML page for a refusal (default: a plain one).
    error_page: ErrorPage | None = field(default=None, compare=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        host_exempt_paths: Iterable[str] = ("/api/health",),
        csrf_exempt_paths: Iterable[str] = (),
        headers: Mapping[str, str | None] | None = None,
        hsts: str | None = DEFAULT_HSTS,
        on_reject: RejectHook | None = None,
        error_page: ErrorPage | None = None,
    ) -> EnvelopeConfig:
        """The chain for ``settings``.

        Allowed hosts: ALLOWED_HOSTS, or the localhost names in development
        when it is empty; the host of APP_URL is always allowed. Trusted
        origins: TRUSTED_ORIGINS plus the origin of APP_URL.
        ``csrf_exempt_paths`` is the explicit opt-out for endpoints that never
        rely on cookies (bearer-token APIs, signed webhooks).
        """
        app_url = urlsplit(settings.APP_URL)
        hosts = list(settings.ALLOWED_HOSTS)
        if not hosts and not settings.is_production:
            hosts.extend(DEV_HOSTS)
        hosts.append(app_url.hostname or "")
        return cls(
            allowed_hosts=AllowedHosts(hosts),
            trusted_origins=TrustedOrigins([*settings.TRUSTED_ORIGINS, settings.APP_URL]),
            trusted_proxies=TrustedProxies(settings.TRUSTED_PROXIES, settings.PROXY_HEADERS),
            security_headers=SecurityHeaders.build(headers, hsts),
            host_exempt_paths=tuple(host_exempt_paths),
            csrf_exempt_paths=tuple(csrf_exempt_paths),
            on_reject=on_reject,
            site=f"{app_url.scheme}://{app_url.netloc}",
            site_host=app_url.netloc,
            error_page=error_page,
        )


@lru_cache(maxsize=512)
def _host(value: str) -> ParsedHost | HostError:
    """Hosts repeat on nearly every request; parse each distinct value once."""
    try:
        return parse_host(value)
    except HostError as exc:
        return exc


@lru_cache(maxsize=512)
def _own_origin(https: bool, value: str) -> Origin | None:
    """The request's own origin (resolved scheme + Host header), for the CSRF check.

    Keyed by the raw Host string, whose hash Python keeps, so a repeat costs
    one cache lookup; None when the Host does not parse.
    """
    host = _host(value)
    if not isinstance(host, ParsedHost):
        return None
    scheme = "https" if https else "http"
    port = host.port if host.port is not None else DEFAULT_PORTS[scheme]
    return Origin(scheme, host.name, port)


# What each header the chain reads is, for one dict lookup per request header
# instead of a comparison against each name in turn.
_HOST, _ORIGIN, _REFERER, _SEC_FETCH_SITE, _XFF, _XFP, _FORWARDED = range(7)
_WANTED = {
    b"host": _HOST,
    b"origin": _ORIGIN,
    b"referer": _REFERER,
    b"sec-fetch-site": _SEC_FETCH_SITE,
    b"x-forwarded-for": _XFF,
    b"x-forwarded-proto": _XFP,
    b"forwarded": _FORWARDED,
}


_NO_HOST = (HostReason.NO_HOST, HostReason.NO_HOST.value)
_SEVERAL_HOSTS = (HostReason.SEVERAL_HOSTS, HostReason.SEVERAL_HOSTS.value)

#: What :meth:`Envelope.screen` answers: (https, the refusal to send or None).
Screening = tuple[bool, Refusal | None]


class Envelope:
    """Wrap ``app`` with proxy resolution, allowed hosts, CSRF and security headers."""

    def __init__(self, app: ASGIApp, config: EnvelopeConfig) -> None:
        self.app = app
        self.config = config
        self._host_exempt = _PathSet(config.host_exempt_paths)
        self._csrf_exempt = _PathSet(config.csrf_exempt_paths)
        # Nearly every request carries one of a few Host values: the verdict on
        # each (parsed, allowed or why not) depends only on this configuration,
        # so it is remembered, in a bounded cache (a flood of made-up hosts only
        # evicts).
        self._verdict = lru_cache(maxsize=512)(self._check_host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":  # noqa: PLR1714 - two compares, no set
            await self.app(scope, receive, send)
            return
        https, refusal = self.screen(scope)
        if refusal is not None:
            await self.refuse(scope, send, refusal, https)
            return
        if kind == "websocket":
            await self.app(scope, receive, send)
            return

        add = self.config.security_headers.add

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": add(message.get("headers", ()), https)}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def screen(self, scope: Scope) -> Screening:  # noqa: PLR0912, PLR0915 - inlined: per request
        """Every check of the chain on one http or websocket request, before the app runs.

        Resolves the client and scheme in place, then returns whether the
        request is https (for HSTS) and the refusal to answer, if any, which is
        already logged and counted. :meth:`__call__` runs this; so does
        ``protect()``'s single-pass stack, which then sends the same refusal
        or adds the same headers in its own ``send``.
        """
        config = self.config
        # The request headers the chain reads, in one pass, into locals (this runs
        # on every request): Origin, Referer and Sec-Fetch-Site keep the last
        # value sent; Host the first and how many came, since more than one is
        # refused; the forwarded headers every line, in lists made only when
        # such a header is present (most requests carry none).
        host_text: str | None = None
        count = 0
        origin = referer = sec_fetch_site = None
        xff: list[str] | None = None
        xfp: list[str] | None = None
        forwarded: list[str] | None = None
        wanted = _WANTED
        for name, value in scope["headers"]:
            kind = wanted.get(name)
            if kind is None:
                continue
            if kind == _HOST:
                if not count:
                    host_text = value.decode("latin-1")
                count += 1
            elif kind == _ORIGIN:
                origin = value.decode("latin-1")
            elif kind == _REFERER:
                referer = value.decode("latin-1")
            elif kind == _SEC_FETCH_SITE:
                sec_fetch_site = value.decode("latin-1")
            elif kind == _XFF:
                xff = [*(xff or ()), value.decode("latin-1")]
            elif kind == _XFP:
                xfp = [*(xfp or ()), value.decode("latin-1")]
            else:
                forwarded = [*(forwarded or ()), value.decode("latin-1")]

        client = scope.get("client")
        peer = client[0] if client else None
        scheme: str = scope.get("scheme", "http")
        if xff or xfp or forwarded:
            resolved = config.trusted_proxies.resolve(
                peer, scheme, xff or (), xfp or (), forwarded or ()
            )
            if resolved.client != peer or resolved.scheme != scheme:
                # Rewritten in place, as uvicorn's proxy-headers middleware does, so
                # that outer layers (the request log, metrics) see the resolved client.
                # A unix-socket peer has no address; a scheme-only change must not
                # invent a (None, 0) client, which frameworks expose as a host of None.
                if resolved.client is not None:
                    scope["client"] = (resolved.client, client[1] if client else 0)
                scope["scheme"] = scheme = resolved.scheme
                peer = resolved.client
        https = scheme == "https" or scheme == "wss"  # noqa: PLR1714 - two compares, no tuple

        path: str = scope["path"]
        if count == 1 and host_text is not None:
            host, problem = self._verdict(host_text)
        else:
            host = None
            problem = _NO_HOST if count == 0 else _SEVERAL_HOSTS
        if problem is not None and not self._host_exempt.matches(path):
            host_reason, detail = problem
            self._log_reject("host", host_reason.name, peer, scope)
            return https, host_refusal(host_reason, detail, config.site_host)

        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        if method not in csrf.SAFE_METHODS and not self._csrf_exempt.matches(path):
            own = _own_origin(https, host_text) if host is not None and host_text else None
            reason = csrf.check(
                method,
                own,
                config.trusted_origins,
                sec_fetch_site=sec_fetch_site,
                origin=origin,
                referer=referer,
            )
            if reason is not None:
                self._log_reject("csrf", reason.name, peer, scope)
                return https, csrf_refusal(reason, config.site)
        return https, None

    def _check_host(self, value: str) -> tuple[ParsedHost | None, tuple[HostReason, str] | None]:
        """One Host line: the parsed host (None if malformed) and the refusal's reason, if any."""
        parsed = _host(value)
        if not isinstance(parsed, ParsedHost):
            return None, (HostReason.MALFORMED_HOST, str(parsed))
        if parsed not in self.config.allowed_hosts:
            return parsed, (HostReason.HOST_NOT_ALLOWED, HostReason.HOST_NOT_ALLOWED.value)
        return parsed, None

    def _log_reject(self, kind: str, reason: str, client: str | None, scope: Scope) -> None:
        scope["bastion.rejected"] = kind
        logger.warning(
            "%s rejected reason=%s client=%s method=%s path=%r",
            kind,
            reason,
            client or "-",
            scope.get("method", "WEBSOCKET"),
            scope["path"][:200],
            extra={"reject": kind, "reason": reason, "client_ip": client},
        )
        if self.config.on_reject is not None:
            self.config.on_reject(kind, reason)

    async def refuse(self, scope: Scope, send: Send, refusal: Refusal, https: bool) -> None:
        """Answer ``refusal`` (a close with code 1008 on a websocket), with the security headers."""
        if scope["type"] == "websocket":
            reason = f"{refusal.title}: {refusal.reason}"
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        body, media = render(refusal, scope, self.config.error_page)
        raw_headers = [
            (b"content-type", media),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            (b"vary", b"Accept, Content-Type"),
        ]
        await send(
            {
                "type": "http.response.start",
                "status": refusal.status,
                "headers": self.config.security_headers.add(raw_headers, https),
            }
        )
        await send({"type": "http.response.body", "body": body})


def envelope(app: ASGIApp, settings: Settings | None = None, **options: Any) -> Envelope:
    """Wrap any ASGI app with the full chain, configured from ``settings``.

    ``options`` go to :meth:`EnvelopeConfig.from_settings` (exempt paths,
    header overrides, HSTS value, a rejection hook).
    """
    config = EnvelopeConfig.from_settings(settings or get_settings(), **options)
    return Envelope(app, config)
