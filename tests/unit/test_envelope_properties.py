"""Property tests: arbitrary request headers thrown at the envelope around a tiny Starlette app.

The ASGI app is called directly with hand-built scopes, because an HTTP client
refuses many of the header bytes worth trying (controls, NUL, bare CR). Whatever
arrives, the envelope answers 200, 400 or 403 with a short plain body, never
lets an exception out, never lets an unsafe request through without a
same-origin signal, and never lets an untrusted peer choose its own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message

from bastion.config import load_settings
from bastion.hardening import envelope

TRUSTED_PROXY = "10.0.0.1"
UNTRUSTED_PEER = "192.0.2.9"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
UNSAFE = frozenset({"POST", "PUT", "DELETE", "PATCH"})
DEFAULT_PORTS = {"http": 80, "https": 443}

#: (scheme, host, port) of APP_URL and TRUSTED_ORIGINS below, written out independently.
TRUSTED = frozenset({("http", "testserver", 80), ("https", "example.com", 443)})

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- the app under test ----------------------------------------------------------------------


@dataclass
class Seen:
    """What the app saw on its last call (``calls == 0``: the app was not called)."""

    client: str | None = None
    scheme: str | None = None
    calls: int = 0
    well_formed_client: bool = True


def _build(proxy_headers: str) -> tuple[ASGIApp, Seen]:
    seen = Seen()

    async def endpoint(request: Request) -> PlainTextResponse:
        seen.calls += 1
        raw = request.scope.get("client")
        seen.well_formed_client = raw is None or (isinstance(raw[0], str) and len(raw) == 2)
        seen.client = request.client.host if request.client is not None else None
        seen.scheme = request.scope["scheme"]
        return PlainTextResponse("ok")

    app = Starlette(
        routes=[
            Route("/", endpoint, methods=list(METHODS)),
            Route("/api/health", endpoint, methods=list(METHODS)),
        ]
    )
    config = load_settings(
        APP_URL="http://testserver",
        ALLOWED_HOSTS="testserver,example.com",
        TRUSTED_ORIGINS="https://example.com",
        TRUSTED_PROXIES=f"{TRUSTED_PROXY},unix",
        PROXY_HEADERS=proxy_headers,
    )
    return envelope(app, config), seen


APPS = {mode: _build(mode) for mode in ("x-forwarded", "forwarded")}


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    seen: Seen


@dataclass
class Call:
    """One request as the ASGI server would hand it over."""

    method: str = "GET"
    path: str = "/"
    scheme: str = "http"
    peer: str | None = UNTRUSTED_PEER  # None: a unix-socket peer, trusted like the proxy
    mode: str = "x-forwarded"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def last(self, name: str) -> str | None:
        found = self.values(name)
        return found[-1] if found else None


async def _drive(call: Call) -> Answer:
    app, seen = APPS[call.mode]
    seen.client, seen.scheme, seen.calls, seen.well_formed_client = None, None, 0, True
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": call.method,
        "scheme": call.scheme,
        "path": call.path,
        "raw_path": call.path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in call.headers],
        "client": None if call.peer is None else (call.peer, 50000),
        "server": ("testserver", 80),
    }
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    snapshot = Seen(seen.client, seen.scheme, seen.calls, seen.well_formed_client)
    return Answer(start["status"], list(start["headers"]), body, snapshot)


def drive(call: Call) -> Answer:
    note(repr(call))
    return asyncio.run(_drive(call))


# -- strategies ------------------------------------------------------------------------------

latin1 = st.text(st.characters(codec="latin-1"), max_size=60)
very_long = st.builds(
    lambda unit, count: unit * count,
    st.sampled_from(["a", "a.", "1.", "x,", ";", "\x00", "\xff", " ", "[", "%"]),
    st.integers(min_value=200, max_value=9000),
)


def weighted(
    common: st.SearchStrategy[str], rare: st.SearchStrategy[str]
) -> st.SearchStrategy[str]:
    """``common`` three times in four, so that most requests get past the early checks."""
    return st.integers(min_value=0, max_value=3).flatmap(lambda n: rare if n == 0 else common)


def header(*samples: str) -> st.SearchStrategy[str]:
    """Mostly near-valid samples, else arbitrary latin-1 text, empty or very long values."""
    return weighted(st.sampled_from(samples), st.one_of(latin1, very_long, st.just("")))


VALID_HOSTS = ("testserver", "TestServer", "testserver.", "testserver:80", "example.com:8443")
host_value = weighted(
    st.sampled_from(VALID_HOSTS),
    header(
        "example.com:99999",
        "example.com:0",
        "testserver:",
        ":80",
        "[::1",
        "[::1]",
        "[::1]:8000",
        "[fe80::1%eth0]",
        "[::1]x",
        "evil.example",
        "testserver:80:80",
        "testserver/x",
        "user@testserver",
        "testserver ",
        "a..b",
        "-a.example.com",
        "testserver\x00",
        "TESTSERVER:0080",
    ),
)
origin_value = header(
    "http://testserver",
    "http://TESTSERVER:80",
    "https://testserver",
    "https://example.com",
    "https://example.com:443",
    "https://example.com.evil.com",
    "https://evil-example.com",
    "http://evil.example",
    "null",
    "NULL",
    "http://testserver/",
    "http://user@testserver",
    "http://[::1",
    "ftp://testserver",
    "http://testserver:99999",
    " http://testserver ",
)
referer_value = header(
    "http://testserver/page?x=1",
    "http://testserver",
    "https://example.com/a",
    "https://example.com.evil.com/",
    "http://evil.example/",
    "http://testserver.evil.example/",
    "//testserver/",
    "/relative",
    "http://[::1/",
    "http://testserver:99999/",
    "javascript:alert(1)",
)
sec_fetch_site_value = header("same-origin", " SAME-ORIGIN ", "same-site", "cross-site", "none")
xff_value = header(
    "6.6.6.6",
    "10.0.0.1",
    "6.6.6.6, 10.0.0.1",
    "10.0.0.1, 10.0.0.1",
    "::1",
    "[2001:db8::1]:443",
    "::ffff:6.6.6.6",
    "1.2.3.4:80",
    "fe80::1%eth0",
    "unknown",
    "1.2.3.4,,",
)
xfp_value = header("https", "http", "HTTPS", "https, http", "http,https", "ftp", "wss")
forwarded_value = header(
    "for=6.6.6.6;proto=https",
    'for="[2001:db8::1]:80";proto=https, for=10.0.0.1',
    "for=unknown",
    "proto=https",
    "for=10.0.0.1;proto=https",
    ";;;,,,",
    "for=",
    'for="',
)


@st.composite
def calls(draw: st.DrawFn) -> Call:
    headers: list[tuple[str, str]] = []

    def add(name: str, values: st.SearchStrategy[str], most: int = 1) -> None:
        count = draw(st.integers(min_value=-most, max_value=most))  # absent about half the time
        headers.extend((name, draw(values)) for _ in range(max(count, 0)))

    # Mostly exactly one Host, so that requests get past the host check often.
    host_count = draw(st.sampled_from([1, 1, 1, 1, 1, 1, 0, 2]))
    headers.extend(("host", draw(host_value)) for _ in range(host_count))
    add("origin", origin_value)
    add("referer", referer_value)
    add("sec-fetch-site", sec_fetch_site_value)
    add("x-forwarded-for", xff_value, most=3)
    add("x-forwarded-proto", xfp_value, most=2)
    add("forwarded", forwarded_value, most=2)
    draw(st.randoms(use_true_random=False)).shuffle(headers)
    return Call(
        method=draw(st.sampled_from(METHODS)),
        path=draw(st.sampled_from(["/", "/", "/", "/api/health"])),
        scheme=draw(st.sampled_from(["http", "https"])),
        peer=draw(st.sampled_from([UNTRUSTED_PEER, TRUSTED_PROXY, None])),
        mode=draw(st.sampled_from(["x-forwarded", "forwarded"])),
        headers=headers,
    )


# -- an independent, deliberately lenient oracle for "same origin" ---------------------------


def _triple(scheme: str, hostname: str | None, port: int | None) -> tuple[str, str, int] | None:
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS or not hostname:
        return None
    name = hostname.lower().rstrip(".")
    with contextlib.suppress(ValueError):
        name = ipaddress.ip_address(name).compressed
    return scheme, name, port if port is not None else DEFAULT_PORTS[scheme]


def _url_triple(value: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(value.strip())
        return _triple(parts.scheme, parts.hostname, parts.port)
    except ValueError:
        return None


def _own_triple(call: Call, scheme: str) -> tuple[str, str, int] | None:
    hosts = call.values("host")
    return _url_triple(f"{scheme}://{hosts[0]}") if len(hosts) == 1 else None


def _is_ip(value: str | None) -> bool:
    try:
        ipaddress.ip_address(value or "")
    except ValueError:
        return False
    return True


# -- properties ------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(calls())
def test_any_headers_get_a_short_clean_answer(call: Call) -> None:
    answer = drive(call)
    names = [name for name, _ in answer.headers]
    assert answer.status in (200, 400, 403)
    assert names.count(b"x-content-type-options") == 1
    assert names.count(b"x-frame-options") == 1
    if answer.status == 200:
        assert answer.body == b"ok"
        assert answer.seen.calls == 1
        assert answer.seen.scheme in ("http", "https")
        assert (b"strict-transport-security" in names) == (answer.seen.scheme == "https")
    else:
        assert answer.seen.calls == 0, "a refused request reached the app"
        assert len(answer.body) < 200
        assert answer.body.isascii()
        assert b"Traceback" not in answer.body
        assert answer.body.startswith(b"Bad Request: " if answer.status == 400 else b"Forbidden")


@PROPERTY_SETTINGS
@given(calls())
def test_unsafe_requests_pass_only_with_a_same_origin_signal(call: Call) -> None:
    answer = drive(call)
    event(f"{'unsafe' if call.method in UNSAFE else 'safe'} -> {answer.status}")
    if call.method not in UNSAFE or answer.status != 200:
        return
    sec_fetch_site = call.last("sec-fetch-site")
    origin = call.last("origin")
    referer = call.last("referer")
    assert (sec_fetch_site, origin, referer) != (None, None, None)
    assert answer.seen.scheme is not None
    allowed = set(TRUSTED)
    own = _own_triple(call, answer.seen.scheme)
    if sec_fetch_site is not None:
        if sec_fetch_site.strip().lower() == "same-origin":
            return
        assert origin is not None
        assert _url_triple(origin) in TRUSTED, "cross-site request passed on its Origin"
        return
    if own is not None:
        allowed.add(own)
    if origin is not None:
        assert origin.strip().lower() != "null"
        assert _url_triple(origin) in allowed, "foreign Origin passed"
        return
    assert referer is not None
    assert _url_triple(referer) in allowed, "foreign Referer passed"


@PROPERTY_SETTINGS
@given(calls())
# A scheme-only change behind a unix-socket proxy once handed the app a (None, 0) client.
@example(Call(peer=None, headers=[("x-forwarded-proto", "https")]))
@example(Call(peer=None, headers=[("x-forwarded-for", "junk"), ("x-forwarded-proto", "https")]))
@example(Call(peer=UNTRUSTED_PEER, headers=[("x-forwarded-for", "6.6.6.6")]))
@example(Call(peer=TRUSTED_PROXY, headers=[("x-forwarded-for", "6.6.6.6, 10.0.0.1")]))
def test_untrusted_peer_never_chooses_its_address_or_scheme(call: Call) -> None:
    # Always a good Host and a safe method, so that the app sees every request.
    headers = [(k, v) for k, v in call.headers if k != "host"] + [("host", "testserver")]
    call = Call("GET", "/", call.scheme, call.peer, call.mode, headers)
    answer = drive(call)
    assert answer.status == 200
    assert answer.seen.well_formed_client, "the app was handed a client without an address"
    event(f"peer {call.peer}, client {'moved' if answer.seen.client != call.peer else 'kept'}")
    if call.peer == UNTRUSTED_PEER:
        assert answer.seen.client == UNTRUSTED_PEER
        assert answer.seen.scheme == call.scheme
        return
    # A trusted proxy (or unix socket) may move the client, but only to a real address.
    assert answer.seen.client is None or _is_ip(answer.seen.client), answer.seen.client
    family = ("forwarded",) if call.mode == "forwarded" else ("x-forwarded-for",)
    if not any(call.values(name) for name in family):
        assert answer.seen.client == call.peer
