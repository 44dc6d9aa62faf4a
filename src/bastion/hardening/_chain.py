"""The whole request-hardening chain: the envelope's hooks, and ``envelope()`` to wrap an app.

Order matters and is fixed here: resolve the client and scheme through
trusted proxies first (everything after depends on them), then refuse unknown
hosts (400), then refuse cross-site unsafe requests (403), and finally add
security headers to whatever the app answers. The request headers are read
in one pass and shared by every step, because this code runs on every request.

:class:`Envelope` has no ASGI ``__call__``: the driver
(:class:`bastion._driver.Driver`) runs it, writes the resolved client and
scheme into the scope in place (as uvicorn's proxy-headers middleware does,
so that the access line names the real client IP) and adds the headers in
its one ``send`` wrapper.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Scope, Send

from bastion._driver import Driver, Header, PathRule, Rejection, Resolved, Screening
from bastion._parse.origins import (
    DEFAULT_PORTS,
    HostError,
    Origin,
    ParsedHost,
    TrustedOrigins,
    parse_host,
)
from bastion.config import Settings, get_settings
from bastion.hardening._csrf import SAFE_METHODS
from bastion.hardening._csrf import check as check_csrf
from bastion.hardening._headers import (
    DEFAULT_HSTS,
    HeaderOverrides,
    PathHeaders,
    SecurityHeaders,
    path_rules,
)
from bastion.hardening._hosts import AllowedHosts, HostReason
from bastion.hardening._proxy import Resolution, TrustedProxies
from bastion.hardening._refusals import csrf_refusal, host_refusal
from bastion.responses import ErrorPage, send_refusal

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
    #: Other security headers below some path prefixes, longest prefix first.
    path_rules: tuple[PathRule, ...] = ()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        host_exempt_paths: Iterable[str] = ("/api/health",),
        csrf_exempt_paths: Iterable[str] = (),
        headers: HeaderOverrides | None = None,
        path_headers: PathHeaders | None = None,
        hsts: str | None = DEFAULT_HSTS,
        on_reject: RejectHook | None = None,
        error_page: ErrorPage | None = None,
    ) -> EnvelopeConfig:
        """The chain for ``settings``.

        Allowed hosts: ALLOWED_HOSTS, or the localhost names in development
        when it is empty; the host of APP_URL is always allowed. Trusted
        origins: TRUSTED_ORIGINS plus the origin of APP_URL.
        ``csrf_exempt_paths`` is the explicit opt-out for endpoints that never
        rely on cookies (bearer-token APIs, signed webhooks). ``headers``
        replaces (or, with None, drops) security headers everywhere;
        ``path_headers`` does so below path prefixes, on top of ``headers``
        (see :func:`bastion.hardening._headers.path_rules`).
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
            path_rules=path_rules(path_headers or {}, headers, hsts),
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


#: A Host line's verdict: the parsed host (None if malformed) and the refusal's reason, if any.
HostVerdict = tuple[ParsedHost | None, tuple[HostReason, str] | None]

# What each header the chain reads is, for one dict lookup per request header
# instead of a comparison against each name in turn. The last three are the
# forwarded headers, kept by position (kind - _XFF) in a tuple of three lists.
_ORIGIN, _REFERER, _SEC_FETCH_SITE, _HOST, _XFF, _XFP, _FORWARDED = range(7)
_WANTED = {
    b"host": _HOST,
    b"origin": _ORIGIN,
    b"referer": _REFERER,
    b"sec-fetch-site": _SEC_FETCH_SITE,
    b"x-forwarded-for": _XFF,
    b"x-forwarded-proto": _XFP,
    b"forwarded": _FORWARDED,
}


#: The verdict on a request with no Host ([False]) or several ([True]).
_NOT_ONE_HOST: tuple[HostVerdict, HostVerdict] = (
    (None, (HostReason.NO_HOST, HostReason.NO_HOST.value)),
    (None, (HostReason.SEVERAL_HOSTS, HostReason.SEVERAL_HOSTS.value)),
)
_SECURE_SCHEMES = frozenset({"https", "wss"})
#: Forwarded lines longer than this, in all, are resolved every time rather than remembered.
_REMEMBERED_LENGTH = 512


def _lines(text: bytes | None) -> list[str]:
    return [] if text is None else [text.decode("latin-1")]


#: The usual decisions (nothing to refuse, nothing resolved), made once rather than per request.
_PASSED: tuple[Screening, Screening] = ((False, None, None), (True, None, None))


class Envelope:
    """The envelope's hooks for the driver: proxy resolution, allowed hosts, CSRF, headers.

    :meth:`Envelope.screen` decides on a request before the app runs and changes
    nothing; :meth:`Envelope.refuse` answers a refusal and is the one place that logs
    and counts it. The driver (:class:`bastion._driver.Driver`) writes the
    resolved client and scheme into the scope and adds :meth:`Envelope.added_headers`
    to every response.
    """

    def __init__(self, config: EnvelopeConfig) -> None:
        self.config = config
        self._host_exempt = _PathSet(config.host_exempt_paths)
        self._csrf_exempt = _PathSet(config.csrf_exempt_paths)
        # Nearly every request carries one of a few Host values: the verdict on
        # each (parsed, allowed or why not) depends only on this configuration,
        # so it is remembered, in a bounded cache (a flood of made-up hosts only
        # evicts).
        self._verdict = lru_cache(maxsize=512)(self._check_host)
        # The resolution of each distinct (peer, scheme, forwarded lines), bounded: the
        # lines are client-written, and a flood of new ones only evicts.
        self._resolved = lru_cache(maxsize=1024)(self._resolve_text)

    def added_headers(self, https: bool) -> tuple[Header, ...]:
        """The security headers for an https or a plain response (HSTS on https only)."""
        return self.config.security_headers.for_response(https)

    def path_rules(self) -> tuple[PathRule, ...]:
        """The security headers below the ``path_headers`` prefixes, longest prefix first."""
        return self.config.path_rules

    def screen(self, scope: Scope) -> Screening:
        """Every check of the chain on one http or websocket request, before the app runs.

        Returns whether the request is https (for HSTS), the rejection to
        answer if any, and the client and scheme resolved through trusted
        proxies when they differ from the scope's. Logs nothing, counts
        nothing and leaves the scope as it is: this runs on every request,
        and the driver does the rest.

        The request headers the chain reads are read in one pass, into
        locals: Origin, Referer and Sec-Fetch-Site keep the last value sent;
        Host the first and how many came, since more than one is refused; the
        forwarded headers every line, collected only when one is present.
        """
        host_text = ""
        hosts = 0
        # Origin, Referer, Sec-Fetch-Site as sent, decoded only if the CSRF check runs.
        origin = referer = site = None
        # X-Forwarded-For, X-Forwarded-Proto and Forwarded lines in the order they came,
        # in lists made only when one is present (most requests carry none).
        forwarded: tuple[list[bytes], list[bytes], list[bytes]] | None = None
        wanted = _WANTED
        for name, value in scope["headers"]:
            kind = wanted.get(name)
            if kind is None:
                continue
            if kind == _ORIGIN:
                origin = value
            elif kind == _REFERER:
                referer = value
            elif kind == _SEC_FETCH_SITE:
                site = value
            elif kind == _HOST:
                hosts += 1
                if hosts == 1:
                    host_text = value.decode("latin-1")
            else:
                forwarded = forwarded or ([], [], [])
                forwarded[kind - _XFF].append(value)

        client = scope.get("client")
        peer = client[0] if client else None
        scheme: str = scope.get("scheme", "http")
        resolved = None if forwarded is None else self._resolve(client, peer, scheme, forwarded)
        if resolved is not None:
            peer = resolved[0][0] if resolved[0] else None
            scheme = resolved[1]
        https = scheme in _SECURE_SCHEMES

        path: str = scope["path"]
        # One Host: its verdict (remembered); none or several: refused, whatever they say.
        host, problem = self._verdict(host_text) if hosts == 1 else _NOT_ONE_HOST[hosts > 1]
        if problem is not None and not self._host_exempt.matches(path):
            refusal = host_refusal(problem[0], problem[1], self.config.site_host)
            return https, Rejection("host", refusal, peer), resolved

        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        if method not in SAFE_METHODS and not self._csrf_exempt.matches(path):
            own = _own_origin(https, host_text) if host is not None and host_text else None
            reason = check_csrf(
                method,
                own,
                self.config.trusted_origins,
                origin=None if origin is None else origin.decode("latin-1"),
                referer=None if referer is None else referer.decode("latin-1"),
                sec_fetch_site=None if site is None else site.decode("latin-1"),
            )
            if reason is not None:
                refusal = csrf_refusal(reason, self.config.site)
                return https, Rejection("csrf", refusal, peer), resolved
        return (https, None, resolved) if resolved is not None else _PASSED[https]

    def _resolve(
        self,
        client: tuple[str, int] | None,
        peer: str | None,
        scheme: str,
        forwarded: tuple[list[bytes], list[bytes], list[bytes]],
    ) -> Resolved | None:
        """The client and scheme the trusted proxies vouch for; None when nothing changes.

        The lines of each header count as one line joined by commas (a list
        either way), so a request is known by five short values: behind a
        proxy, the same few clients come again and again, and their
        resolution is remembered (a bounded LRU; lines longer than
        :data:`_REMEMBERED_LENGTH` in all are resolved every time).
        """
        xff, xfp, other = forwarded
        joined = (
            b",".join(xff) if xff else None,
            b",".join(xfp) if xfp else None,
            b",".join(other) if other else None,
        )
        size = sum(len(text) for text in joined if text is not None)
        resolve = self._resolved if size <= _REMEMBERED_LENGTH else self._resolve_text
        resolution = resolve(peer, scheme, *joined)
        if resolution.client == peer and resolution.scheme == scheme:
            return None
        # A unix-socket peer has no address: a scheme-only change keeps the scope's
        # client rather than invent a (None, 0) one, which frameworks expose as a host
        # of None.
        if resolution.client is None:
            return client, resolution.scheme
        return (resolution.client, client[1] if client else 0), resolution.scheme

    def _resolve_text(
        self,
        peer: str | None,
        scheme: str,
        xff: bytes | None,
        xfp: bytes | None,
        other: bytes | None,
    ) -> Resolution:
        """:meth:`TrustedProxies.resolve` on the joined lines (None: that header was absent)."""
        return self.config.trusted_proxies.resolve(
            peer, scheme, _lines(xff), _lines(xfp), _lines(other)
        )

    def _check_host(self, value: str) -> HostVerdict:
        """One Host line: the parsed host (None if malformed) and the refusal's reason, if any."""
        parsed = _host(value)
        if not isinstance(parsed, ParsedHost):
            return None, (HostReason.MALFORMED_HOST, str(parsed))
        if parsed not in self.config.allowed_hosts:
            return parsed, (HostReason.HOST_NOT_ALLOWED, HostReason.HOST_NOT_ALLOWED.value)
        return parsed, None

    async def refuse(self, scope: Scope, send: Send, rejection: Rejection) -> None:
        """Say it (one WARNING line, the metrics hook), then answer it.

        An http request gets the refusal in the client's language (see
        :mod:`bastion.responses`); a websocket a close with code 1008 before
        it was ever accepted.
        """
        self._report(scope, rejection)
        refusal = rejection.refusal
        if scope["type"] == "websocket":
            reason = f"{refusal.title}: {refusal.reason}"
            await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
            return
        await send_refusal(scope, send, refusal, page=self.config.error_page)

    def _report(self, scope: Scope, rejection: Rejection) -> None:
        """The one WARNING line on ``bastion.hardening`` and the ``on_reject`` hook."""
        kind, reason = rejection.kind, rejection.refusal.reason
        # The access line labels the request with REJECTED rather than a route.
        scope["bastion.rejected"] = kind
        logger.warning(
            "%s rejected reason=%s client=%s method=%s path=%r",
            kind,
            reason,
            rejection.client or "-",
            scope.get("method", "WEBSOCKET"),
            scope["path"][:200],
            extra={"reject": kind, "reason": reason, "client_ip": rejection.client},
        )
        if self.config.on_reject is not None:
            self.config.on_reject(kind, reason)


def envelope(app: ASGIApp, settings: Settings | None = None, **options: Any) -> Driver:
    """Wrap any ASGI app with the full chain, configured from ``settings``.

    The driver with the envelope's hooks alone (no request id, no access
    line, no failure rule; ``protect()`` adds those). ``options`` go to
    :meth:`EnvelopeConfig.from_settings` (exempt paths, header overrides,
    HSTS value, a rejection hook, an error page).
    """
    config = EnvelopeConfig.from_settings(settings or get_settings(), **options)
    return Driver(app, envelope=Envelope(config))
