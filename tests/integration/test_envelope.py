"""The envelope as a whole: ordering, exemptions, logs, headers, websockets and defaults."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from bastion._driver import Driver
from bastion.config import load_settings
from bastion.hardening import envelope
from tests.support.asgi import call

SITE = "https://app.example.com"
SAME = [("host", "app.example.com"), ("sec-fetch-site", "same-origin")]


class App:
    """A tiny app that records what it saw; ``calls`` proves a refusal ran no handler."""

    def __init__(self) -> None:
        self.calls = 0

        async def echo(request: Request) -> Response:
            self.calls += 1
            client = request.client.host if request.client else None
            return JSONResponse({"client": client, "scheme": request.url.scheme})

        async def framed(request: Request) -> Response:
            return PlainTextResponse("x", headers={"x-frame-options": "SAMEORIGIN"})

        async def socket(websocket: WebSocket) -> None:
            self.calls += 1
            await websocket.accept()
            await websocket.close()

        self.asgi = Starlette(
            routes=[
                Route("/", echo, methods=["GET", "POST"]),
                Route("/api/health", echo),
                Route("/api/health/live", echo),
                Route("/api/healthz", echo),
                Route("/hooks/in", echo, methods=["POST"]),
                Route("/framed", framed),
                WebSocketRoute("/ws", socket),
            ]
        )


def wrap(app: App, **settings: str) -> Driver:
    values = {"APP_URL": SITE, "ALLOWED_HOSTS": "app.example.com", **settings}
    return envelope(app.asgi, load_settings(**values), csrf_exempt_paths=["/hooks/"])


async def test_refusals_run_no_handler_and_log_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    wrapped = wrap(app)
    with caplog.at_level(logging.WARNING, logger="bastion.hardening"):
        bad_host = await call(
            wrapped, headers=[("host", "evil.example")], client=("203.0.113.5", 1)
        )
        cross = await call(
            wrapped,
            "POST",
            headers=[("host", "app.example.com"), ("origin", "https://evil.example")],
            client=("203.0.113.6", 1),
        )
    assert app.calls == 0
    assert bad_host.status == 400
    assert bad_host.body == (
        b"Bad Request: Host is not in ALLOWED_HOSTS [HOST_NOT_ALLOWED]\n"
        b"use the site's host, app.example.com, or list this one in ALLOWED_HOSTS\n"
    )
    assert cross.status == 403
    assert cross.body == (
        b"Forbidden (CSRF): Origin does not match the site or a trusted origin [ORIGIN_MISMATCH]\n"
        b"send Origin: https://app.example.com, or list your origin in TRUSTED_ORIGINS\n"
    )
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "host rejected reason=HOST_NOT_ALLOWED client=203.0.113.5 method=GET path='/'",
        "csrf rejected reason=ORIGIN_MISMATCH client=203.0.113.6 method=POST path='/'",
    ]


async def test_refusals_carry_security_headers_and_no_store() -> None:
    result = await call(wrap(App()), "POST", headers=[("host", "app.example.com")])
    assert result.status == 403
    assert result.header("x-content-type-options") == "nosniff"
    assert result.header("cache-control") == "no-store"
    assert result.header("content-type") == "text/plain; charset=utf-8"


async def test_log_line_escapes_the_path(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bastion.hardening"):
        await call(wrap(App()), "POST", "/a\nfake log line", headers=[("host", "app.example.com")])
    (line,) = [r.getMessage() for r in caplog.records]
    assert "\n" not in line
    assert "path='/a\\nfake log line'" in line


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], "missing Host header [NO_HOST]"),
        (
            [("host", "app.example.com"), ("host", "app.example.com")],
            "several Host headers [SEVERAL_HOSTS]",
        ),
        ([("host", "app.example.com/evil")], "invalid host name in Host header [MALFORMED_HOST]"),
        ([("host", "app.example.com:99999")], "invalid port in Host header [MALFORMED_HOST]"),
    ],
)
async def test_host_problems(headers: list[tuple[str, str]], reason: str) -> None:
    result = await call(wrap(App()), headers=headers)
    assert result.status == 400
    assert result.body.decode().splitlines()[0] == f"Bad Request: {reason}"


async def test_health_is_exempt_from_the_host_check_on_segment_boundaries() -> None:
    app = App()
    wrapped = wrap(app)
    probe = [("host", "10.1.2.3:8000")]
    assert (await call(wrapped, path="/api/health", headers=probe)).status == 200
    assert (await call(wrapped, path="/api/health/live", headers=probe)).status == 200
    assert (await call(wrapped, path="/api/health", headers=[])).status == 200
    assert (await call(wrapped, path="/api/healthz", headers=probe)).status == 400


async def test_csrf_exempt_paths_are_explicit() -> None:
    app = App()
    wrapped = wrap(app)
    host = [("host", "app.example.com")]
    assert (await call(wrapped, "POST", "/hooks/in", headers=host)).status == 200
    assert (await call(wrapped, "POST", "/", headers=host)).status == 403
    assert app.calls == 1


async def test_same_origin_post_passes_and_headers_are_added() -> None:
    result = await call(wrap(App()), "POST", headers=SAME)
    assert result.status == 200
    assert result.header("content-security-policy") is not None
    assert "'unsafe-inline'" not in (result.header("content-security-policy") or "")
    assert result.header("x-frame-options") == "DENY"
    assert result.header("cross-origin-opener-policy") == "same-origin"
    assert result.header("referrer-policy") == "same-origin"
    assert result.header("permissions-policy") is not None
    assert result.header("strict-transport-security") is None  # plain http


async def test_hsts_only_when_the_resolved_scheme_is_https() -> None:
    wrapped = wrap(App())
    direct_https = await call(wrapped, headers=SAME, scheme="https")
    assert direct_https.header("strict-transport-security") == "max-age=31536000; includeSubDomains"
    via_proxy = await call(wrapped, headers=[*SAME, ("x-forwarded-proto", "https")])
    assert via_proxy.header("strict-transport-security") is not None
    spoofed = await call(
        wrapped, headers=[*SAME, ("x-forwarded-proto", "https")], client=("203.0.113.5", 1)
    )
    assert spoofed.header("strict-transport-security") is None


async def test_app_headers_are_neither_overwritten_nor_duplicated() -> None:
    result = await call(wrap(App()), path="/framed", headers=SAME)
    assert result.all("x-frame-options") == ["SAMEORIGIN"]


async def test_each_header_is_configurable() -> None:
    settings = load_settings(APP_URL=SITE, ALLOWED_HOSTS="app.example.com")
    wrapped = envelope(
        App().asgi,
        settings,
        headers={"x-frame-options": None, "Content-Security-Policy": "default-src 'none'"},
        hsts="max-age=60",
    )
    result = await call(wrapped, headers=SAME, scheme="https")
    assert result.header("x-frame-options") is None
    assert result.header("content-security-policy") == "default-src 'none'"
    assert result.header("strict-transport-security") == "max-age=60"


async def test_behind_a_tls_proxy_the_https_origin_is_the_own_origin() -> None:
    """The classic false positive: TLS ends at the proxy, the app sees http."""
    app = App()
    wrapped = wrap(app, TRUSTED_PROXIES="10.0.0.1")
    headers = [
        ("host", "app.example.com"),
        ("origin", "https://app.example.com"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-for", "198.51.100.4"),
    ]
    result = await call(wrapped, "POST", headers=headers, client=("10.0.0.1", 1))
    assert result.status == 200
    assert result.body == b'{"client":"198.51.100.4","scheme":"https"}'


async def test_spoofed_forwarded_for_never_changes_the_client() -> None:
    wrapped = wrap(App(), TRUSTED_PROXIES="10.0.0.1")
    headers = [*SAME, ("x-forwarded-for", "1.2.3.4"), ("x-forwarded-for", "5.6.7.8")]
    untrusted = await call(wrapped, headers=headers, client=("203.0.113.5", 1))
    assert untrusted.body == b'{"client":"203.0.113.5","scheme":"http"}'
    trusted = await call(wrapped, headers=headers, client=("10.0.0.1", 1))
    assert trusted.body == b'{"client":"5.6.7.8","scheme":"http"}'


async def test_reject_hook_hears_each_refusal() -> None:
    seen: list[tuple[str, str]] = []
    settings = load_settings(APP_URL=SITE, ALLOWED_HOSTS="app.example.com")
    wrapped = envelope(App().asgi, settings, on_reject=lambda kind, why: seen.append((kind, why)))
    await call(wrapped, headers=[("host", "nope.example")])
    await call(wrapped, "DELETE", headers=[("host", "app.example.com"), ("origin", "null")])
    assert seen == [("host", "HOST_NOT_ALLOWED"), ("csrf", "NULL_ORIGIN")]


async def test_cross_site_websocket_is_closed_before_the_app_runs() -> None:
    app = App()
    wrapped = wrap(app)
    refused = await call(
        wrapped,
        path="/ws",
        kind="websocket",
        headers=[("host", "app.example.com"), ("origin", "https://evil.example")],
        scheme="wss",
    )
    assert refused.closed is not None
    assert refused.closed["code"] == 1008
    assert app.calls == 0
    accepted = await call(
        wrapped,
        path="/ws",
        kind="websocket",
        headers=[("host", "app.example.com"), ("origin", SITE)],
        scheme="wss",
    )
    assert accepted.status == 101
    assert app.calls == 1


async def test_lifespan_passes_through() -> None:
    events: list[str] = []

    async def inner(scope: dict[str, object], receive: object, send: object) -> None:
        events.append(str(scope["type"]))

    wrapped = envelope(inner, load_settings())  # type: ignore[arg-type]
    await wrapped({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert events == ["lifespan"]


class TestDefaults:
    async def test_development_allows_localhost_names_and_the_app_host(self) -> None:
        wrapped = envelope(App().asgi, load_settings(APP_URL="http://myapp.test:8000"))
        for host in ("localhost:8000", "127.0.0.1", "[::1]:8000", "api.localhost", "myapp.test"):
            assert (await call(wrapped, headers=[("host", host)])).status == 200, host
        assert (await call(wrapped, headers=[("host", "other.test")])).status == 400

    async def test_production_allows_only_the_app_host_by_default(self) -> None:
        settings = load_settings(APP_ENV="production", SECRET_KEY="k" * 40, APP_URL=SITE)
        wrapped = envelope(App().asgi, settings)
        assert (await call(wrapped, headers=[("host", "app.example.com")])).status == 200
        assert (await call(wrapped, headers=[("host", "localhost")])).status == 400

    async def test_explicit_hosts_keep_the_app_host(self) -> None:
        wrapped = envelope(App().asgi, load_settings(APP_URL=SITE, ALLOWED_HOSTS=".other.test"))
        assert (await call(wrapped, headers=[("host", "app.example.com")])).status == 200
        assert (await call(wrapped, headers=[("host", "a.other.test")])).status == 200
        assert (await call(wrapped, headers=[("host", "localhost")])).status == 400

    async def test_trusted_origins_from_settings(self) -> None:
        settings = load_settings(
            APP_URL=SITE, ALLOWED_HOSTS="app.example.com", TRUSTED_ORIGINS="https://*.example.org"
        )
        wrapped = envelope(App().asgi, settings)
        ok = [("host", "app.example.com"), ("origin", "https://x.example.org")]
        assert (await call(wrapped, "POST", headers=ok)).status == 200
        bad = [("host", "app.example.com"), ("origin", "https://example.org")]
        assert (await call(wrapped, "POST", headers=bad)).status == 403


@pytest.mark.parametrize(
    ("headers", "media"),
    [
        ([("content-type", "application/json")], "application/json"),
        ([("accept", "application/json")], "application/json"),
        ([("accept", "text/html,application/xhtml+xml,*/*;q=0.8")], "text/html; charset=utf-8"),
        ([("accept", "*/*")], "text/plain; charset=utf-8"),
    ],
)
async def test_a_refusal_speaks_the_clients_language_and_says_what_to_send(
    headers: list[tuple[str, str]], media: str
) -> None:
    app = App()
    result = await call(wrap(app), "POST", headers=[("host", "app.example.com"), *headers])
    assert result.status == 403
    assert app.calls == 0
    assert result.header("content-type") == media
    text = result.body.decode()
    if media == "application/json":
        assert json.loads(text) == {
            "error": "Forbidden (CSRF)",
            "reason": "NO_ORIGIN",
            "hint": "send Origin: https://app.example.com with an unsafe request, as a browser does",
        }
    else:
        assert "NO_ORIGIN" in text
        assert "send Origin: https://app.example.com" in text
    assert result.header("x-content-type-options") == "nosniff"
    assert result.header("cache-control") == "no-store"


async def test_a_refusal_reflects_nothing_the_client_sent() -> None:
    evil = "<script>alert(1)</script>.example"
    result = await call(wrap(App()), headers=[("host", evil), ("accept", "text/html")])
    assert result.status == 400
    assert b"<script>" not in result.body
    assert b"HOST_NOT_ALLOWED" in result.body or b"MALFORMED_HOST" in result.body
