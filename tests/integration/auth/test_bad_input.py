"""Garbage at the auth endpoints: a 4xx with a reason, never a 5xx, and the audit intact."""

from __future__ import annotations

import pytest

from bastion.audit import count
from tests.integration.auth.conftest import Browser

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "reason"),
    [
        (
            "/api/auth/sign-in",
            b'{"email": "a@example.com", "pass',
            JSON,
            400,
            "body is not valid JSON",
        ),
        ("/api/auth/sign-in", b"[1, 2]", JSON, 400, "body must be"),
        (
            "/api/auth/sign-in",
            b'{"email": 5, "password": "x"}',
            JSON,
            400,
            "email and password must be strings",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "a@example.com"}',
            JSON,
            400,
            "email and password must be strings",
        ),
        ("/api/auth/sign-in", b"{" + b" " * 20_000 + b"}", JSON, 413, "body larger than"),
        (
            "/api/auth/sign-in",
            b'{"email": "' + b"a" * 300 + b'@example.com", "password": "x"}',
            JSON,
            400,
            "email is longer than",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "a\\n@example.com", "password": "x"}',
            JSON,
            400,
            "email contains control characters",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "evil@example.com\\r\\naudit forged", "password": "x"}',
            JSON,
            400,
            "email contains control characters",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "not-an-email", "password": "x"}',
            JSON,
            400,
            "email is not an address",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "a@example.com", "password": "' + b"p" * 2000 + b'"}',
            JSON,
            400,
            "password must be at most",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "a@example.com", "password": "a\\u0000b"}',
            JSON,
            400,
            "password contains a NUL",
        ),
        (
            "/api/auth/sign-in",
            b"email=a%40example.com&password=%ff%fe",
            FORM,
            400,
            "form is not valid UTF-8",
        ),
        (
            "/api/auth/sign-in",
            b"email=a@example.com",
            {"content-type": "text/plain"},
            415,
            "expected Content-Type",
        ),
        (
            "/api/auth/sign-up",
            b'{"email": "a@example.com", "password": "short"}',
            JSON,
            400,
            "password must be at least",
        ),
        ("/api/auth/sign-up", b"\xff\xfe\xfd", JSON, 400, "body is not valid JSON"),
    ],
)
async def test_bad_input(
    browser: Browser, path: str, body: bytes, headers: dict[str, str], status: int, reason: str
) -> None:
    async with browser.database.session() as db:
        before = await count(db)
    response = await browser.client.post(path, content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"].startswith(reason)
    async with browser.database.session() as db:
        assert await count(db) == before


async def test_pages_answer_bad_forms_with_a_message(browser: Browser) -> None:
    response = await browser.client.post(
        "/sign-in", content=b"email=x%0a%40y.z&password=p", headers=FORM
    )
    assert response.status_code == 400
    assert "email contains control characters" in response.text
    assert "Traceback" not in response.text
