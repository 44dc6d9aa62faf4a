"""The driver of the per-request stack, path by path, over bare ASGI calls in-process.

Each hook alone and all together, http and websocket and lifespan; a refusal;
a client that hangs up; a bug before and after the response started; an
app's own 500 held back, replaced for a database fault and kept for a bug; an app
that sends its own security headers or request id. The hooks are the real
ones (observer, envelope, failure rule), so what is asserted is what an app
behind ``protect()`` gets: the status, every header once, the access line,
the metrics and the log lines.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import pytest
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion._driver import Driver, add_missing
from bastion._stack import build_stack as protect
from bastion.config import Settings, load_settings
from bastion.db import DatabaseUnavailable
from bastion.hardening import envelope
from bastion.hardening._chain import EnvelopeConfig
from bastion.ops._failures import FailureRule
from bastion.ops._logs import AccessRecord, access_lines
from bastion.ops._metrics import Metrics
from bastion.ops._observe import RequestObserver

SITE = "https://app.example.com"
HOST = ("host", "app.example.com")
SECRET = "hunter2-in-an-exception-message"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(APP_URL=SITE, ALLOWED_HOSTS="app.example.com")


@dataclass
class Exchange:
    """What one request sent back, and what the app saw."""

    messages: list[Message] = field(default_factory=list)
    seen: list[Scope] = field(default_factory=list)

    @property
    def starts(self) -> list[Message]:
        return [m for m in self.messages if m["type"] == "http.response.start"]

    @property
    def status(self) -> int:
        (start,) = self.starts  # exactly one response start, whatever happened
        status: int = start["status"]
        return status

    def all(self, name: str) -> list[str]:
        (start,) = self.starts
        key = name.encode()
        return [v.decode("latin-1") for k, v in start["headers"] if k.lower() == key]

    def header(self, name: str) -> str:
        (value,) = self.all(name)  # present exactly once
        return value

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )


class Apps:
    """Small bare ASGI apps, each recording the scope it was called with."""

    def __init__(self) -> None:
        self.seen: list[Scope] = []

    def ok(self, headers: list[tuple[bytes, bytes]] | None = None) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self.seen.append(scope)
            raw = [(b"content-type", b"text/plain"), *(headers or [])]
            await send({"type": "http.response.start", "status": 200, "headers": raw})
            await send({"type": "http.response.body", "body": b"ok"})

        return app

    def reads_body(self) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self.seen.append(scope)
            await Request(scope, receive).body()  # ClientDisconnect if the client left
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        return app

    def fails(self, after_start: bool = False) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self.seen.append(scope)
            if after_start:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"sent"})
            raise RuntimeError(SECRET)

        return app

    def answers_500_then_raises(
        self, exc: Exception, body: bytes = b"the app's own page"
    ) -> ASGIApp:
        """As Starlette's and FastAPI's error middleware do: their own 500, then the exception."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self.seen.append(scope)
            await send({"type": "http.response.start", "status": 500, "headers": []})
            half = len(body) // 2
            await send({"type": "http.response.body", "body": body[:half], "more_body": True})
            await send({"type": "http.response.body", "body": body[half:]})
            raise exc

        return app

    def socket(self) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self.seen.append(scope)
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})

        return app


async def request(
    app: ASGIApp,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    *,
    scheme: str = "http",
    kind: str = "http",
    hang_up: bool = False,
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> Exchange:
    """One request through ``app``; ``hang_up``: the client is gone before its body arrives."""
    scope: Scope = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": "/things",
        "raw_path": b"/things",
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers or [HOST]],
        "client": client,
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    exchange = Exchange()
    first = True

    async def receive() -> Message:
        nonlocal first
        was_first, first = first, False
        if kind == "websocket":
            return {"type": "websocket.connect"} if was_first else {"type": "websocket.disconnect"}
        if was_first and not hang_up:
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        exchange.messages.append(message)

    await app(scope, receive, send)
    exchange.seen.append(scope)
    return exchange


def requests_total(metrics: Metrics, status: int, route: str = "<unmatched>") -> float:
    value = metrics.registry.get_sample_value(
        "bastion_http_requests_total", {"route": route, "method": "GET", "status": str(status)}
    )
    return value or 0.0


def access_records(caplog: pytest.LogCaptureFixture) -> list[AccessRecord]:
    access_lines.drain()
    return [r for r in caplog.records if isinstance(r, AccessRecord)]


def lines(caplog: pytest.LogCaptureFixture, logger: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno == level]


def observer_for(settings: Settings, metrics: Metrics | None = None) -> RequestObserver:
    proxies = EnvelopeConfig.from_settings(settings).trusted_proxies
    return RequestObserver(metrics=metrics, trusted_proxies=proxies)


# -- each hook alone --------------------------------------------------------------------


async def test_the_observer_alone_names_and_records_each_request(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    apps = Apps()
    driver = Driver(apps.ok(), observer=observer_for(settings, metrics))
    with caplog.at_level(logging.INFO, logger="bastion.access"):
        sent = await request(driver)
        (record,) = access_records(caplog)
    request_id = sent.header("x-request-id")
    assert len(request_id) == 32
    assert int(request_id, 16) >= 0
    assert sent.all("x-content-type-options") == []  # no envelope: no security headers
    assert (sent.status, sent.body) == (200, b"ok")
    assert record.getMessage().startswith("GET <unmatched> 200 ")
    assert f"id={request_id}" in record.getMessage()
    assert requests_total(metrics, 200) == 1


async def test_the_envelope_alone_adds_its_headers_and_no_id(settings: Settings) -> None:
    apps = Apps()
    driver = envelope(apps.ok(), settings)
    assert isinstance(driver, Driver)
    plain = await request(driver)
    assert plain.header("x-frame-options") == "DENY"
    assert plain.all("strict-transport-security") == []  # HSTS on https only
    assert plain.all("x-request-id") == []
    secure = await request(driver, scheme="https")
    assert secure.header("strict-transport-security").startswith("max-age=")
    refused = await request(driver, headers=[("host", "evil.example")])
    assert refused.status == 400
    assert refused.header("x-frame-options") == "DENY"
    assert len(apps.seen) == 2, "the refusal ran no app"


async def test_without_the_failure_rule_an_exception_reaches_the_server(settings: Settings) -> None:
    driver = envelope(Apps().fails(), settings)
    with pytest.raises(RuntimeError, match=SECRET):
        await request(driver)


async def test_the_failure_rule_alone_answers_a_bug_and_swallows_a_hang_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    apps = Apps()
    failing = Driver(apps.fails(), failures=FailureRule())
    with caplog.at_level(logging.ERROR, logger="bastion.errors"):
        sent = await request(failing)
    assert sent.status == 500
    assert sent.header("cache-control") == "no-store"
    assert sent.all("x-frame-options") == []  # no envelope: nothing else added
    assert len(lines(caplog, "bastion.errors", logging.ERROR)) == 1
    hung_up = await request(Driver(apps.reads_body(), failures=FailureRule()), hang_up=True)
    assert hung_up.messages == []  # nobody is left to answer


# -- all together ----------------------------------------------------------------------


async def test_all_hooks_together_add_every_header_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    apps = Apps()
    stack = protect(apps.ok(), settings, metrics=metrics)
    with caplog.at_level(logging.INFO, logger="bastion.access"):
        sent = await request(stack, scheme="https")
        (record,) = access_records(caplog)
    assert (sent.status, sent.body) == (200, b"ok")
    for name in ("x-content-type-options", "content-security-policy", "strict-transport-security"):
        assert sent.header(name)  # each exactly once
    request_id = sent.header("x-request-id")
    assert apps.seen[0]["bastion.request_id"] == request_id
    assert record.request_id == request_id
    assert requests_total(metrics, 200) == 1


async def test_a_trusted_proxy_resolves_the_client_the_app_and_the_access_line_see(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    apps = Apps()
    stack = protect(apps.ok(), settings)
    relayed = [HOST, ("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https")]
    with caplog.at_level(logging.INFO, logger="bastion.access"):
        sent = await request(stack, headers=relayed)
        (record,) = access_records(caplog)
    assert apps.seen[0]["client"] == ("203.0.113.9", 50000)
    assert apps.seen[0]["scheme"] == "https"
    assert sent.header("strict-transport-security")
    assert "client=203.0.113.9" in record.getMessage()


# -- a refusal -------------------------------------------------------------------------


async def test_a_refusal_is_answered_logged_counted_and_recorded_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    apps = Apps()
    stack = protect(apps.ok(), settings, metrics=metrics)
    cross_site = [HOST, ("origin", "https://evil.example"), ("accept", "application/json")]
    with caplog.at_level(logging.INFO):
        sent = await request(stack, "POST", cross_site, client=("198.51.100.4", 1))
        access_lines.drain()
    assert apps.seen == []
    assert sent.status == 403
    assert json.loads(sent.body) == {
        "error": "Forbidden (CSRF)",
        "reason": "ORIGIN_MISMATCH",
        "hint": f"send Origin: {SITE}, or list your origin in TRUSTED_ORIGINS",
    }
    assert sent.header("vary") == "Accept, Content-Type"
    assert sent.header("x-frame-options") == "DENY"
    assert sent.header("x-request-id")
    (warning,) = lines(caplog, "bastion.hardening", logging.WARNING)
    assert warning.getMessage() == (
        "csrf rejected reason=ORIGIN_MISMATCH client=198.51.100.4 method=POST path='/things'"
    )
    assert (warning.reject, warning.reason, warning.client_ip) == (  # type: ignore[attr-defined]
        "csrf",
        "ORIGIN_MISMATCH",
        "198.51.100.4",
    )
    csrf = metrics.registry.get_sample_value(
        "bastion_csrf_rejections_total", {"reason": "ORIGIN_MISMATCH"}
    )
    assert csrf == 1
    (record,) = [r for r in caplog.records if isinstance(r, AccessRecord)]
    assert record.getMessage().startswith("POST <rejected> 403 ")


# -- http and websocket and lifespan ---------------------------------------------------


async def test_a_websocket_is_screened_and_otherwise_left_alone(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    apps = Apps()
    stack = protect(apps.socket(), settings, metrics=Metrics())
    same_site = [HOST, ("origin", SITE)]
    with caplog.at_level(logging.INFO):
        accepted = await request(stack, headers=same_site, kind="websocket")
        refused = await request(stack, headers=[HOST], kind="websocket")
        access_lines.drain()
    assert [m["type"] for m in accepted.messages] == ["websocket.accept", "websocket.close"]
    assert len(apps.seen) == 1, "the refused socket never reached the app"
    assert refused.messages == [
        {
            "type": "websocket.close",
            "code": 1008,
            "reason": "Forbidden (CSRF): NO_ORIGIN",
        }
    ]
    assert len(lines(caplog, "bastion.hardening", logging.WARNING)) == 1
    assert [r for r in caplog.records if isinstance(r, AccessRecord)] == []  # http only


async def test_lifespan_passes_through_untouched(settings: Settings) -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())
        await send({"type": "lifespan.startup.complete"})

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await protect(app, settings)(scope, receive, send)
    assert seen == [{"type": "lifespan.startup"}]
    assert sent == [{"type": "lifespan.startup.complete"}]
    assert set(scope) == {"type", "asgi", "state"}


# -- a client that hangs up, and bugs --------------------------------------------------


async def test_a_client_that_hangs_up_is_a_499_and_nothing_else(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    stack = protect(Apps().reads_body(), settings, metrics=metrics)
    with caplog.at_level(logging.INFO):
        sent = await request(stack, hang_up=True)
        access_lines.drain()
    assert sent.messages == []
    (record,) = [r for r in caplog.records if isinstance(r, AccessRecord)]
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("GET <unmatched> 499 ")
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert requests_total(metrics, 499) == 1


async def test_a_bug_before_the_answer_is_a_clean_500_and_one_error_line(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    stack = protect(Apps().fails(), settings, metrics=metrics)
    with caplog.at_level(logging.INFO):
        sent = await request(stack, headers=[HOST, ("accept", "application/json")])
        access_lines.drain()
    assert sent.status == 500
    assert json.loads(sent.body)["reason"] == "INTERNAL_ERROR"
    assert sent.header("x-content-type-options") == "nosniff"
    request_id = sent.header("x-request-id")
    (error,) = lines(caplog, "bastion.errors", logging.ERROR)
    assert error.getMessage().startswith("unhandled RuntimeError in GET <unmatched> at ")
    assert error.getMessage().endswith(f"id={request_id}")
    assert "test_driver.py" in error.where  # type: ignore[attr-defined]
    assert SECRET not in caplog.text
    assert SECRET.encode() not in sent.body
    assert requests_total(metrics, 500) == 1


async def test_a_bug_after_the_answer_began_is_only_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    stack = protect(Apps().fails(after_start=True), settings, metrics=metrics)
    with caplog.at_level(logging.INFO):
        sent = await request(stack)
        access_lines.drain()
    assert (sent.status, sent.body) == (200, b"sent")  # one start: no second answer
    assert len(lines(caplog, "bastion.errors", logging.ERROR)) == 1
    assert requests_total(metrics, 200) == 1
    assert requests_total(metrics, 500) == 0


async def test_a_database_fault_replaces_the_apps_500_with_a_503(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    fault = DatabaseUnavailable(f"jobs database: {SECRET}")
    stack = protect(Apps().answers_500_then_raises(fault), settings, metrics=metrics)
    with caplog.at_level(logging.INFO):
        sent = await request(stack, headers=[HOST, ("accept", "application/json")])
        access_lines.drain()
    assert sent.status == 503  # one start: the app's 500 never went out
    assert sent.header("retry-after") == "5"
    assert sent.header("x-content-type-options") == "nosniff"
    assert json.loads(sent.body)["reason"] == "DATABASE_UNAVAILABLE"
    assert b"the app's own page" not in sent.body
    (warning,) = lines(caplog, "bastion.errors", logging.WARNING)
    assert "DatabaseUnavailable" in warning.getMessage()
    assert lines(caplog, "bastion.errors", logging.ERROR) == []
    assert SECRET not in caplog.text
    assert requests_total(metrics, 503) == 1
    assert requests_total(metrics, 500) == 0
    assert metrics.registry.get_sample_value("bastion_database_unavailable_total") == 1


async def test_an_apps_own_500_for_a_bug_stands(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    stack = protect(Apps().answers_500_then_raises(RuntimeError(SECRET)), settings, metrics=metrics)
    with caplog.at_level(logging.INFO):
        sent = await request(stack)
        access_lines.drain()
    assert (sent.status, sent.body) == (500, b"the app's own page")
    assert sent.header("x-content-type-options") == "nosniff"
    assert len(lines(caplog, "bastion.errors", logging.ERROR)) == 1
    assert requests_total(metrics, 500) == 1


async def test_a_500_too_big_to_hold_goes_out_as_it_comes(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Past 64 KiB a 500 is no error page; it is not kept in memory, and so not replaced."""
    metrics = Metrics()
    body = b"x" * (100 * 1024)
    app = Apps().answers_500_then_raises(DatabaseUnavailable("gone"), body=body)
    stack = protect(app, settings, metrics=metrics)
    with caplog.at_level(logging.INFO):
        sent = await request(stack)
        access_lines.drain()
    assert (sent.status, sent.body) == (500, body)
    assert len(lines(caplog, "bastion.errors", logging.WARNING)) == 1  # still said, once
    assert requests_total(metrics, 500) == 1
    assert not metrics.registry.get_sample_value("bastion_database_unavailable_total")


# -- the one pass over the response headers --------------------------------------------


async def test_an_apps_own_security_headers_and_id_are_kept_and_not_doubled(
    settings: Settings,
) -> None:
    own = [
        (b"X-Frame-Options", b"SAMEORIGIN"),
        (b"content-security-policy", b"default-src 'self'"),
        (b"X-Request-Id", b"the-apps-own"),
    ]
    sent = await request(protect(Apps().ok(own), settings), scheme="https")
    assert sent.header("x-frame-options") == "SAMEORIGIN"
    assert sent.header("content-security-policy") == "default-src 'self'"
    assert sent.header("x-request-id") == "the-apps-own"
    assert sent.header("referrer-policy") == "same-origin"  # the rest still go in, once
    assert sent.header("strict-transport-security")


async def test_a_trusted_proxys_request_id_is_stamped_once(settings: Settings) -> None:
    apps = Apps()
    stack = protect(apps.ok(), settings)
    relayed = await request(stack, headers=[HOST, ("x-request-id", "edge-42")])
    assert relayed.header("x-request-id") == "edge-42"
    untrusted = await request(
        stack, headers=[HOST, ("x-request-id", "made-up")], client=("203.0.113.1", 1)
    )
    assert untrusted.header("x-request-id") != "made-up"


def test_add_missing_matches_names_whatever_their_case() -> None:
    added = ((b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin"))
    names = frozenset({b"x-frame-options", b"referrer-policy", b"x-request-id"})
    stamp = (b"x-request-id", b"1")
    assert add_missing([(b"a", b"1")], added, names, stamp) == [(b"a", b"1"), *added, stamp]
    assert add_missing([(b"X-Frame-Options", b"SAMEORIGIN")], added, names, stamp) == [
        (b"X-Frame-Options", b"SAMEORIGIN"),
        (b"referrer-policy", b"same-origin"),
        stamp,
    ]
    assert add_missing([], (), frozenset(), None) == []
