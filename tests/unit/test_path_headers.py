"""Security headers by path prefix: the longest prefix wins, checked when the envelope is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from bastion import Bastion
from bastion.config import ConfigError, load_settings
from bastion.hardening import DEFAULT_SECURITY_HEADERS, envelope
from tests.support.asgi import call

SETTINGS = load_settings(APP_URL="http://localhost:8000")
DOCS_CSP = "default-src 'self'; script-src 'self' 'sha256-abc='"
DEFAULT_CSP = DEFAULT_SECURITY_HEADERS["content-security-policy"]


async def _plain(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hi")(scope, receive, send)


async def _own_csp(scope: Scope, receive: Receive, send: Send) -> None:
    response = PlainTextResponse("hi", headers={"Content-Security-Policy": "sandbox"})
    await response(scope, receive, send)


PATH_HEADERS: dict[str, dict[str, str | None]] = {
    "/docs": {"Content-Security-Policy": DOCS_CSP, "X-Frame-Options": None},
    "/docs/oauth2-redirect": {"content-security-policy": "default-src 'none'"},
    "/static/": {"Cross-Origin-Resource-Policy": "cross-origin"},
}


@pytest.mark.parametrize(
    ("path", "csp", "frame", "corp"),
    [
        ("/", DEFAULT_CSP, "DENY", "same-origin"),
        ("/docs", DOCS_CSP, None, "same-origin"),
        ("/docs/", DOCS_CSP, None, "same-origin"),
        ("/docs/deeper/page", DOCS_CSP, None, "same-origin"),
        ("/docsx", DEFAULT_CSP, "DENY", "same-origin"),  # by path segment, not by string
        ("/docs/oauth2-redirect", "default-src 'none'", "DENY", "same-origin"),  # longest wins
        ("/docs/oauth2-redirectx", DOCS_CSP, None, "same-origin"),
        ("/static/app.js", DEFAULT_CSP, "DENY", "cross-origin"),
        ("/static", DEFAULT_CSP, "DENY", "same-origin"),  # "/static/" covers what is below
    ],
)
async def test_the_longest_matching_prefix_wins(
    path: str, csp: str, frame: str | None, corp: str
) -> None:
    app = envelope(_plain, SETTINGS, path_headers=PATH_HEADERS)
    result = await call(app, path=path, headers=[("host", "localhost:8000")])
    assert result.status == 200
    assert result.all("content-security-policy") == [csp]
    assert result.header("x-frame-options") == frame
    assert result.header("cross-origin-resource-policy") == corp
    assert result.header("x-content-type-options") == "nosniff"  # the rest as everywhere


async def test_a_prefix_builds_on_the_app_wide_overrides_and_keeps_hsts() -> None:
    app = envelope(
        _plain,
        load_settings(APP_URL="http://localhost:8000", TRUSTED_PROXIES="127.0.0.1"),
        headers={"Referrer-Policy": "no-referrer"},
        path_headers={"/docs": {"Content-Security-Policy": DOCS_CSP}},
    )
    result = await call(
        app,
        path="/docs",
        headers=[("host", "localhost:8000"), ("x-forwarded-proto", "https")],
    )
    assert result.header("referrer-policy") == "no-referrer"
    assert result.header("content-security-policy") == DOCS_CSP
    assert result.header("strict-transport-security") is not None


async def test_a_header_the_app_sets_is_still_its_own_below_a_prefix() -> None:
    app = envelope(_own_csp, SETTINGS, path_headers=PATH_HEADERS)
    result = await call(app, path="/docs", headers=[("host", "localhost:8000")])
    assert result.all("content-security-policy") == ["sandbox"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"path_headers": {"docs": {}}}, "'docs' is not a path prefix"),
        ({"path_headers": {"/docs?x=1": {}}}, "is not a path prefix"),
        ({"path_headers": {"/do cs": {}}}, "is not a path prefix"),
        ({"path_headers": {"/docs": "default-src 'self'"}}, "expected a mapping"),
        ({"path_headers": {"/docs": {"X Frame": "DENY"}}}, "'X Frame' is not a header name"),
        ({"path_headers": {"/docs": {"csp:": "x"}}}, "is not a header name"),
        ({"path_headers": {"/docs": {"X-A": "a\r\nSet-Cookie: s=1"}}}, "on one line"),
        ({"headers": {"X-A": "caf\u00e9"}}, "headers: the value of X-A"),
    ],
)
def test_a_bad_prefix_name_or_value_is_refused_when_the_envelope_is_built(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match="headers") as raised:
        envelope(_plain, SETTINGS, **options)
    assert message in str(raised.value)


async def test_bastion_protect_takes_the_same_overrides(tmp_path: Path) -> None:
    security = Bastion(
        load_settings(APP_URL="http://localhost:8000", DATABASE_URL=f"sqlite:///{tmp_path}/b.db"),
        configure_logging=False,
    )
    try:
        app = security.protect(_plain, path_headers={"/docs": {"X-Frame-Options": "SAMEORIGIN"}})
        docs = await call(app, path="/docs/", headers=[("host", "localhost:8000")])
        other = await call(app, path="/", headers=[("host", "localhost:8000")])
        with pytest.raises(ConfigError, match="not a path prefix"):
            security.protect(_plain, path_headers={"docs": {}})
    finally:
        await security.shutdown()
    assert (docs.header("x-frame-options"), other.header("x-frame-options")) == (
        "SAMEORIGIN",
        "DENY",
    )
