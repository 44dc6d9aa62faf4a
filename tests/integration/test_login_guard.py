"""The sign-in guard in front of a login route it did not write, in-process on a real Valkey.

The route below stands for a third-party one: it checks a password its own
way and answers 400 on a failure, as fastapi-users does. The guard must count
every attempt however the account is sent (form, JSON, multipart, or not at
all), answer 429 before the handler runs, and audit what the handler said.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion import Bastion, LoginRoute
from bastion.audit import recent
from bastion.config import load_settings
from bastion.db import migrate
from tests.support.servers import free_port

ORIGIN = "http://testserver"


class LoginApp:
    """A login handler the guard cannot see into: it only counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.app = Starlette(routes=[Route("/login", self.login, methods=["GET", "POST"])])

    async def login(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse({"form": "here"})
        self.calls += 1
        form = await request.form()
        if form.get("password") == "right password":
            return JSONResponse({"token": "t"})
        return JSONResponse({"detail": "LOGIN_BAD_CREDENTIALS"}, status_code=400)


async def _bastion(tmp_path: Path, valkey_url: str, **env: str) -> Bastion:
    database_url = env.pop("DATABASE_URL", f"sqlite:///{tmp_path}/guard.db")
    if database_url.startswith("sqlite"):
        await migrate(database_url)
    settings = load_settings(
        APP_URL=ORIGIN,
        ALLOWED_HOSTS="testserver",
        DATABASE_URL=database_url,
        VALKEY_URL=valkey_url,
        **env,
    )
    return Bastion(settings, configure_logging=False)  # the tests read the lines with caplog


@pytest.fixture
async def guarded(
    tmp_path: Path, valkey_url: str
) -> AsyncIterator[tuple[Bastion, LoginApp, httpx.AsyncClient]]:
    bastion = await _bastion(
        tmp_path, valkey_url, SIGN_IN_RATE_LIMIT="5/minute", SIGN_IN_ACCOUNT_RATE_LIMIT="2/minute"
    )
    login = LoginApp()
    app = bastion.protect(login.app, logins=[LoginRoute("/login")])
    transport = httpx.ASGITransport(app=cast(Any, app), client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(
        transport=transport, base_url=ORIGIN, headers={"Origin": ORIGIN}
    ) as client:
        yield bastion, login, client
    await bastion.shutdown()


async def test_the_account_is_counted_however_it_is_sent(
    guarded: tuple[Bastion, LoginApp, httpx.AsyncClient],
) -> None:
    bastion, login, client = guarded
    form = await client.post("/login", data={"username": "Ada@Example.com", "password": "x"})
    multipart = await client.post(
        "/login", files={"username": (None, "ada@example.com"), "password": (None, "x")}
    )
    as_json = await client.post("/login", json={"username": " ADA@example.com ", "password": "x"})
    assert [form.status_code, multipart.status_code, as_json.status_code] == [400, 400, 429]
    refusal = as_json.json()
    assert refusal == {
        "error": "Too Many Requests",
        "reason": "RATE_LIMITED",
        "hint": f"wait {as_json.headers['retry-after']} seconds, then try again",
    }
    assert as_json.headers["ratelimit-limit"] == "2"
    assert int(as_json.headers["retry-after"]) >= 1
    assert login.calls == 2, "the refused attempt never reached the handler"
    async with bastion.database.session() as db:
        failed = await recent(db, action="auth.sign_in.failed")
    assert [(row.subject, row.client_ip) for row in failed] == [
        ("ada@example.com", "127.0.0.1")
    ] * 2


async def test_a_body_without_a_readable_account_still_counts_against_the_ip(
    guarded: tuple[Bastion, LoginApp, httpx.AsyncClient],
) -> None:
    _, login, client = guarded
    bodies: list[dict[str, Any]] = [
        {
            "content": b"password=x",
            "headers": {"content-type": "application/x-www-form-urlencoded"},
        },
        {"content": b"--b\r\n\r\n", "headers": {"content-type": "multipart/form-data; boundary=b"}},
        {"content": b"username=a%40b.c", "headers": {"content-type": "text/plain"}},
        {"content": b'["a@b.c"]', "headers": {"content-type": "application/json"}},
        {"content": b'{"username": 5}', "headers": {"content-type": "application/json"}},
    ]
    statuses = [(await client.post("/login", **body)).status_code for body in bodies]
    # All five share the "no account" bucket (2/minute), and all five count against the IP.
    assert statuses == [400, 400, 429, 429, 429]
    assert login.calls == 2
    refused = await client.post("/login", data={"username": "z@example.com"})
    assert refused.status_code == 429
    assert refused.headers["ratelimit-limit"] == "5", "refused by the per-IP limit"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "reason", "detail"),
    [
        (b"\xff\xfe{}", "application/json", 400, "INVALID_BODY", "body is not valid UTF-8"),
        (b"[" * 5000, "application/json", 400, "INVALID_BODY", "nested deeper than 32"),
        (
            b'{"username": "a@b.c", "username": "d@e.f"}',
            "application/json",
            400,
            "INVALID_BODY",
            'duplicate key "username"',
        ),
        (
            b"username=a%40b.c&username=d%40e.f",
            "application/x-www-form-urlencoded",
            400,
            "INVALID_BODY",
            "username is sent more than once",
        ),
        (
            b"username=%00",
            "application/x-www-form-urlencoded",
            400,
            "INVALID_BODY",
            "username contains a NUL character",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\na@b.c\r\n'
            b'--b\r\nContent-Disposition: form-data; name="username"\r\n\r\nd@e.f\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            400,
            "INVALID_BODY",
            "username is sent more than once",
        ),
        (
            b"{}",
            "application/json; charset=latin-1",
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "charset must be utf-8",
        ),
    ],
)
async def test_a_body_every_endpoint_refuses_is_refused_here_too_and_counts_nothing(
    guarded: tuple[Bastion, LoginApp, httpx.AsyncClient],
    content: bytes,
    content_type: str,
    status: int,
    reason: str,
    detail: str,
) -> None:
    """The rules of bastion.body: the guard and the handler never read two different accounts."""
    _, login, client = guarded
    headers = {"content-type": content_type, "accept": "application/json"}
    for _ in range(6):  # more than the per-IP limit (5/minute): none of them is counted
        response = await client.post("/login", content=content, headers=headers)
        assert response.status_code == status
        refusal = response.json()
        assert set(refusal) == {"error", "reason", "hint"}
        assert refusal["reason"] == reason
        assert detail in refusal["hint"]
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    if "json" not in content_type:  # a client that sends JSON reads JSON; others read text
        plain = await client.post("/login", content=content, headers={"content-type": content_type})
        assert plain.text.startswith(f"{refusal['error']}: ")
        assert plain.text.splitlines()[0].endswith(f"[{reason}]")
    assert login.calls == 0
    allowed = await client.post("/login", data={"username": "a@example.com", "password": "x"})
    assert allowed.status_code == 400, "the handler's answer: nothing was counted before"
    assert login.calls == 1


async def test_other_methods_and_paths_pass_through_uncounted(
    guarded: tuple[Bastion, LoginApp, httpx.AsyncClient],
) -> None:
    _, login, client = guarded
    for _ in range(10):
        assert (await client.get("/login")).status_code == 200
    assert (await client.post("/login", data={"username": "a@example.com"})).status_code == 400
    assert login.calls == 1


async def test_a_success_is_audited_with_the_client_ip_the_proxy_gave(
    guarded: tuple[Bastion, LoginApp, httpx.AsyncClient],
) -> None:
    bastion, _, client = guarded
    response = await client.post(
        "/login",
        data={"username": "grace@example.com", "password": "right password"},
        headers={"X-Forwarded-For": "198.51.100.23"},
    )
    assert response.status_code == 200
    async with bastion.database.session() as db:
        (succeeded,) = await recent(db, action="auth.sign_in.succeeded")
    assert (succeeded.subject, succeeded.client_ip) == ("grace@example.com", "198.51.100.23")


async def test_a_database_that_is_down_costs_the_audit_row_not_the_login(
    tmp_path: Path, valkey_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    down = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    bastion = await _bastion(tmp_path, valkey_url, DATABASE_URL=down, DATABASE_TIMEOUT_MS="200")
    login = LoginApp()
    app = bastion.protect(login.app, logins=[LoginRoute("/login")])
    transport = httpx.ASGITransport(app=cast(Any, app), client=("127.0.0.1", 5000))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            with caplog.at_level(logging.WARNING, logger="bastion.guard"):
                response = await client.post(
                    "/login",
                    data={"username": "a@example.com", "password": "x"},
                    headers={"Origin": ORIGIN},
                )
    finally:
        await bastion.shutdown()
    assert response.status_code == 400  # the handler's answer, untouched
    warnings = [r.getMessage() for r in caplog.records if r.name == "bastion.guard"]
    assert len(warnings) == 1
    assert "could not audit" in warnings[0]
    assert "nobody" not in warnings[0]


def _requests_by_route(exposition: str, path: str) -> dict[str, float]:
    """``bastion_http_requests_total`` for POST ``path``, by status, from /api/metrics."""
    counts: dict[str, float] = {}
    for line in exposition.splitlines():
        if line.startswith("bastion_http_requests_total{") and 'method="POST"' in line:
            labels, value = line.rsplit(" ", 1)
            if f'route="{path}"' in labels:
                status = labels.split('status="', 1)[1].split('"', 1)[0]
                counts[status] = float(value)
    return counts


async def test_the_guards_own_answers_are_counted_under_the_login_route(
    tmp_path: Path, valkey_url: str
) -> None:
    """A flood on /login shows up as /login on a dashboard by route, not as <unmatched>."""
    bastion = await _bastion(
        tmp_path, valkey_url, METRICS_ENABLED="true", SIGN_IN_ACCOUNT_RATE_LIMIT="2/minute"
    )
    app = bastion.protect(LoginApp().app, logins=[LoginRoute("/login")])
    transport = httpx.ASGITransport(app=cast(Any, app), client=("127.0.0.1", 5000))
    client = httpx.AsyncClient(transport=transport, base_url=ORIGIN, headers={"Origin": ORIGIN})
    async with client:
        await _flood(client)
    await bastion.shutdown()


async def _flood(client: httpx.AsyncClient) -> None:
    too_large = await client.post(
        "/login",
        content=b"username=" + b"a" * (20 * 1024),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    invalid = await client.post(
        "/login", content=b"\xff", headers={"content-type": "application/json"}
    )
    answered = [
        (await client.post("/login", data={"username": "a@example.com"})).status_code
        for _ in range(4)
    ]
    assert (too_large.status_code, invalid.status_code, answered) == (
        413,
        400,
        [400, 400, 429, 429],
    )
    exposition = (await client.get("/api/metrics")).text
    assert _requests_by_route(exposition, "/login") == {"413": 1, "400": 3, "429": 2}
    assert _requests_by_route(exposition, "<unmatched>") == {}


async def test_a_status_that_is_neither_failure_nor_success_writes_no_row(
    tmp_path: Path, valkey_url: str
) -> None:
    """A framework's 422 (its own body validation) counts against the limit, and is not audited."""

    async def validating(request: Request) -> JSONResponse:
        return JSONResponse({"detail": [{"type": "missing"}]}, status_code=422)

    bastion = await _bastion(tmp_path, valkey_url, SIGN_IN_ACCOUNT_RATE_LIMIT="2/minute")
    app = bastion.protect(
        Starlette(routes=[Route("/login", validating, methods=["POST"])]),
        logins=[LoginRoute("/login")],
    )
    transport = httpx.ASGITransport(app=cast(Any, app), client=("127.0.0.1", 5000))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url=ORIGIN, headers={"Origin": ORIGIN}
        ) as client:
            statuses = [
                (await client.post("/login", data={"username": "a@example.com"})).status_code
                for _ in range(3)
            ]
        async with bastion.database.session() as db:
            rows = [
                row.action
                for action in ("auth.sign_in.failed", "auth.sign_in.succeeded")
                for row in await recent(db, action=action)
            ]
    finally:
        await bastion.shutdown()
    assert statuses == [422, 422, 429]
    assert rows == []
