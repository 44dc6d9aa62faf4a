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
        ("/api/auth/sign-up", b"\xff\xfe\xfd", JSON, 400, "body is not valid UTF-8"),
        # Each of these once reached a 500 (issue 15) or was read ambiguously.
        ("/api/auth/sign-in", b"[" * 1000 + b"]" * 1000, JSON, 400, "body is nested deeper"),
        ("/api/auth/sign-up", b'{"email": ' + b"[" * 5000, JSON, 400, "body is nested deeper"),
        (
            "/api/auth/sign-in",
            b'{"email": "a\\ud800@b.c", "password": "xxxxxxxxxxxxxxxxxxxx"}',
            JSON,
            400,
            "email is not valid Unicode",
        ),
        (
            "/api/auth/sign-up",
            b'{"email": "a@example.com", "password": "a long enough \\udfff password"}',
            JSON,
            400,
            "password is not valid Unicode",
        ),
        (
            "/api/auth/sign-up",
            b'{"email": "a@example.com", "password": "\xed\xa0\x80 long enough password"}',
            JSON,
            400,
            "body is not valid UTF-8",
        ),
        (
            "/api/auth/sign-in",
            b"email=a%40example.com&password=a%ED%A0%80b",
            FORM,
            400,
            "form is not valid UTF-8",
        ),
        (
            "/api/auth/sign-in",
            b"email=a%40example.com&password=a%00b",
            FORM,
            400,
            "password contains a NUL",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "a@example.com", "email": "b@example.com", "password": "x"}',
            JSON,
            400,
            'duplicate key "email"',
        ),
        (
            "/api/auth/sign-in",
            b"email=a%40example.com&email=b%40example.com&password=x",
            FORM,
            400,
            "email is sent more than once",
        ),
        ("/api/auth/sign-in", b"&".join([b"f=1"] * 100), FORM, 400, "form has more than"),
        ("/api/auth/sign-in", b'{"email": NaN}', JSON, 400, "NaN is not a JSON number"),
        ("/api/auth/sign-in", b'{"email": 1e999}', JSON, 400, "a number is too large"),
        (
            "/api/auth/sign-in",
            b'{"email": ' + b"9" * 5000 + b"}",
            JSON,
            400,
            "body has a number with too many digits",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "a@example.com", "password": "x"}',
            {"content-type": "application/json; charset=utf-16"},
            415,
            "charset must be utf-8",
        ),
        (
            "/api/auth/sign-in",
            b'{"email": "a@example.com", "password": "x"}',
            {**JSON, "content-encoding": "gzip"},
            415,
            "Content-Encoding is not supported",
        ),
        ("/api/auth/sign-in", b"", {}, 415, "expected Content-Type"),
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
