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
from bastion.hardening.hosts import AllowedHosts, HostError, HostReason, ParsedHost, parse_host
from bastion.hardening.origins import DEFAULT_PORTS, Origin, TrustedOrigins
from bastion.hardening.proxy import TrustedProxies
from bastion.hardening.refusals import ErrorPage, Refusal, csrf_refusal, host_refusal, render

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


class _Facts:
    """The request headers the chain reads, gathered in a single pass.

    Origin, Referer and Sec-Fetch-Site keep the last value sent; Host and the
    forwarded headers keep every line, since their number matters.
    """

    __slots__ = ("forwarded", "hosts", "origin", "referer", "sec_fetch_site", "xff", "xfp")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self.hosts: list[str] = []
        self.origin: str | None = None
        self.referer: str | None = None
        self.sec_fetch_site: str | None = None
        self.xff: list[str] = []
        self.xfp: list[str] = []
        self.forwarded: list[str] = []
        wanted = _WANTED
        for name, value in raw:
            kind = wanted.get(name)
            if kind is None:
                continue
            text = value.decode("latin-1")
            if kind == _HOST:
                self.hosts.append(text)
            elif kind == _ORIGIN:
                self.origin = text
            elif kind == _REFERER:
                self.referer = text
            elif kind == _SEC_FETCH_SITE:
                self.sec_fetch_site = text
            elif kind == _XFF:
                self.xff.append(text)
            elif kind == _XFP:
                self.xfp.append(text)
            else:
                self.forwarded.append(text)


class Envelope:
    """Wrap ``app`` with proxy resolution, allowed hosts, CSRF and security headers."""

    def __init__(self, app: ASGIApp, config: EnvelopeConfig) -> None:
        self.app = app
        self.config = config
        self._host_exempt = _PathSet(config.host_exempt_paths)
        self._csrf_exempt = _PathSet(config.csrf_exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in {"http", "websocket"}:
            await self.app(scope, receive, send)
            return
        config = self.config
        facts = _Facts(scope["headers"])

        client = scope.get("client")
        peer = client[0] if client else None
        scheme: str = scope.get("scheme", "http")
        if facts.xff or facts.xfp or facts.forwarded:
            resolved = config.trusted_proxies.resolve(
                peer, scheme, facts.xff, facts.xfp, facts.forwarded
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
        https = scheme in ("https", "wss")

        path: str = scope["path"]
        host: ParsedHost | None = None
        if len(facts.hosts) == 1:
            parsed = _host(facts.hosts[0])
            host = parsed if isinstance(parsed, ParsedHost) else None
        if not self._host_exempt.matches(path):
            problem = self._host_problem(facts.hosts, host)
            if problem is not None:
                host_reason, detail = problem
                self._log_reject("host", host_reason.name, peer, scope)
                refusal = host_refusal(host_reason, detail, config.site_host)
                await self._refuse(scope, send, refusal, https)
                return

        method = scope.get("method", "GET") if kind == "http" else "WEBSOCKET"
        if method not in csrf.SAFE_METHODS and not self._csrf_exempt.matches(path):
            own = _own_origin(https, facts.hosts[0]) if host is not None else None
            reason = csrf.check(
                method,
                own,
                config.trusted_origins,
                sec_fetch_site=facts.sec_fetch_site,
                origin=facts.origin,
                referer=facts.referer,
            )
            if reason is not None:
                self._log_reject("csrf", reason.name, peer, scope)
                await self._refuse(scope, send, csrf_refusal(reason, config.site), https)
                return

        if kind == "websocket":
            await self.app(scope, receive, send)
            return

        headers = config.security_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = headers.add(message.get("headers", ()), https)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _host_problem(
        self, values: list[str], host: ParsedHost | None
    ) -> tuple[HostReason, str] | None:
        """The refusal's named reason and the text to show, or None when the Host is fine."""
        if not values:
            reason = HostReason.NO_HOST
        elif len(values) > 1:
            reason = HostReason.SEVERAL_HOSTS
        elif host is None:
            error = _host(values[0])
            detail = str(error) if isinstance(error, HostError) else HostReason.MALFORMED_HOST.value
            return HostReason.MALFORMED_HOST, detail
        elif host not in self.config.allowed_hosts:
            reason = HostReason.HOST_NOT_ALLOWED
        else:
            return None
        return reason, reason.value

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

    async def _refuse(self, scope: Scope, send: Send, refusal: Refusal, https: bool) -> None:
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
