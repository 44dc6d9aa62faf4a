"""Accounts and sessions through the JSON API, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from bastion.audit import recent
from bastion.auth._sessions import COOKIE_NAME, SECURE_COOKIE_NAME
from bastion.config import Settings
from bastion.db import AuditLog, User, UserSession
from bastion.db._types import utcnow
from tests.integration.auth.conftest import Browser

PASSWORD = "correct horse battery"


async def assert_session_ended(browser: Browser) -> None:
    """A cookie that names no live session: 401 SESSION_ENDED and the cookie cleared.

    The next request, with no cookie, is an anonymous visitor's: 200 {"user": null}.
    """
    refused = await browser.client.get("/api/auth/session")
    assert refused.status_code == 401
    assert refused.json()["reason"] == "SESSION_ENDED"
    cleared = refused.headers["set-cookie"]
    assert cleared.startswith(f'{COOKIE_NAME}=""')
    assert "Max-Age=0" in cleared
    browser.client.cookies.clear()  # a cookie set by hand has no domain for the jar to match
    anonymous = await browser.client.get("/api/auth/session")
    assert (anonymous.status_code, anonymous.json()) == (200, {"user": None})


async def audit_rows(browser: Browser, action: str | None = None) -> list[AuditLog]:
    async with browser.database.session() as db:
        return await recent(db, limit=100, action=action)


async def test_sign_up_sign_in_session_sign_out(browser: Browser) -> None:
    created = await browser.sign_up("Ada@Example.com", PASSWORD)
    assert created.status_code == 201
    assert created.json()["user"]["email"] == "ada@example.com"
    await browser.client.post("/api/auth/sign-out")

    signed_in = await browser.sign_in("ada@example.COM", PASSWORD)
    assert signed_in.status_code == 200
    token = signed_in.cookies[COOKIE_NAME]
    session = await browser.client.get("/api/auth/session")
    assert session.json() == {"user": {"id": 1, "email": "ada@example.com", "admin": False}}

    out = await browser.client.post("/api/auth/sign-out")
    assert out.json() == {"signed_out": True}
    assert (await browser.client.get("/api/auth/session")).json() == {"user": None}
    # The server forgot it: replaying the old cookie does not bring the session back.
    browser.client.cookies.set(COOKIE_NAME, token)
    await assert_session_ended(browser)


async def test_only_a_hash_of_the_token_is_stored(browser: Browser) -> None:
    await browser.sign_up("ada@example.com", PASSWORD)
    token = browser.client.cookies[COOKIE_NAME]
    async with browser.database.session() as db:
        hashes = list((await db.scalars(select(UserSession.token_hash))).all())
    assert token not in hashes
    assert all(len(h) == 64 for h in hashes)


async def test_the_stored_hash_is_keyed_by_the_secret(settings: Settings) -> None:
    browser = Browser(settings.model_copy(update={"SECRET_KEY": "k" * 64}))
    try:
        await browser.sign_up("ada@example.com", PASSWORD)
        token = browser.client.cookies[COOKIE_NAME]
        async with browser.database.session() as db:
            stored = await db.scalar(select(UserSession.token_hash))
        assert stored == hmac.new(b"k" * 64, token.encode(), hashlib.sha256).hexdigest()
        assert stored != hashlib.sha256(token.encode()).hexdigest()
    finally:
        await browser.close()
    # Rotating SECRET_KEY signs everyone out, as in Django.
    rotated = Browser(settings.model_copy(update={"SECRET_KEY": "r" * 64}))
    try:
        rotated.client.cookies.set(COOKIE_NAME, token)
        await assert_session_ended(rotated)
    finally:
        await rotated.close()


async def test_a_new_session_id_at_every_sign_in(browser: Browser) -> None:
    await browser.sign_up("ada@example.com", PASSWORD)
    first = browser.client.cookies[COOKIE_NAME]
    await browser.sign_in("ada@example.com", PASSWORD)
    second = browser.client.cookies[COOKIE_NAME]
    assert first != second


async def test_email_is_unique_case_insensitively(browser: Browser) -> None:
    assert (await browser.sign_up("ada@example.com", PASSWORD)).status_code == 201
    again = await browser.sign_up("ADA@example.com", PASSWORD)
    assert again.status_code == 409


async def test_unknown_email_and_wrong_password_look_the_same(browser: Browser) -> None:
    await browser.sign_up("ada@example.com", PASSWORD)
    await browser.client.post("/api/auth/sign-out")
    verifications: list[str | None] = []
    original = browser.auth.passwords._verify

    def counting(stored: str | None, password: str) -> object:
        verifications.append(stored)
        return original(stored, password)

    browser.auth.passwords._verify = counting  # type: ignore[method-assign,assignment]
    unknown = await browser.sign_in("nobody@example.com", PASSWORD)
    wrong = await browser.sign_in("ada@example.com", "not the password")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.content == wrong.content == b'{"error":"invalid email or password"}'
    # Both ran one real argon2 verification: the unknown email against the dummy hash.
    assert len(verifications) == 2
    assert verifications[0] is None
    assert verifications[1] is not None


async def test_failed_sign_in_is_audited_with_ip_agent_and_reason(browser: Browser) -> None:
    await browser.sign_up("ada@example.com", PASSWORD)
    long_agent = "x" * 1000
    await browser.client.post(
        "/api/auth/sign-in",
        json={"email": " ADA@example.com ", "password": "wrong password"},
        headers={"user-agent": long_agent},
    )
    await browser.sign_in("ghost@example.com", PASSWORD)
    failed = await audit_rows(browser, "auth.sign_in.failed")
    assert [(r.subject, r.details["reason"]) for r in failed] == [
        ("ghost@example.com", "unknown_user"),
        ("ada@example.com", "bad_password"),
    ]
    row = failed[1]
    assert row.client_ip == "127.0.0.1"
    assert row.outcome == "failure"
    assert row.user_agent == "x" * 256
    (signed_up,) = await audit_rows(browser, "auth.sign_up")
    assert signed_up.details == {"admin": False, "signed_in": True}  # its session is the sign-up's
    assert await audit_rows(browser, "auth.sign_in.succeeded") == []


async def test_client_ip_comes_from_the_trusted_proxy_resolver(settings: Settings) -> None:
    proxied = Browser(settings.model_copy(update={"TRUSTED_PROXIES": ("127.0.0.1",)}))
    try:
        await proxied.client.post(
            "/api/auth/sign-in",
            json={"email": "a@example.com", "password": "whatever-pass"},
            headers={"x-forwarded-for": "6.6.6.6, 198.51.100.23"},
        )
        (row,) = await audit_rows(proxied, "auth.sign_in.failed")
        assert row.client_ip == "198.51.100.23"
    finally:
        await proxied.close()


async def test_deactivated_user_counts_as_signed_out(browser: Browser) -> None:
    await browser.sign_up("ada@example.com", PASSWORD)
    assert (await browser.client.get("/api/auth/session")).json()["user"] is not None
    assert await browser.auth.deactivate("ada@example.com")
    await assert_session_ended(browser)
    refused = await browser.sign_in("ada@example.com", PASSWORD)
    assert refused.status_code == 401
    (row, *_) = await audit_rows(browser, "auth.sign_in.failed")
    assert row.details["reason"] == "deactivated"


async def test_idle_and_absolute_expiry(browser: Browser) -> None:
    await browser.sign_up("ada@example.com", PASSWORD)
    async with browser.database.session() as db:
        await db.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(days=2)))
        await db.commit()
    await assert_session_ended(browser)

    await browser.sign_in("ada@example.com", PASSWORD)
    assert (await browser.client.get("/api/auth/session")).json()["user"] is not None
    async with browser.database.session() as db:
        await db.execute(update(UserSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        await db.commit()
    await assert_session_ended(browser)
    async with browser.database.session() as db:
        assert (await db.scalars(select(UserSession))).all() == []  # expired rows are removed


async def test_rehash_when_parameters_change(browser: Browser) -> None:
    await browser.sign_up("ada@example.com", PASSWORD)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    async with browser.database.session() as db:
        await db.execute(update(User).values(password_hash=weak))
        await db.commit()
    assert (await browser.sign_in("ada@example.com", PASSWORD)).status_code == 200
    async with browser.database.session() as db:
        stored = await db.scalar(select(User.password_hash))
    assert stored is not None
    assert stored != weak
    assert stored.startswith("$argon2id$")
    assert not browser.auth.passwords.hasher.check_needs_rehash(stored)
    (row, *_) = await audit_rows(browser, "auth.sign_in.succeeded")
    assert row.details == {"rehashed": True}


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_cookie_flags(settings: Settings, scheme: str) -> None:
    browser = Browser(settings, scheme=scheme)
    try:
        response = await browser.sign_up("ada@example.com", PASSWORD)
        cookie = response.headers["set-cookie"]
        parts = [p.strip().lower() for p in cookie.split(";")]
        assert "httponly" in parts
        assert "samesite=lax" in parts
        assert "path=/" in parts
        assert not any(p.startswith("domain") for p in parts)
        if scheme == "https":
            assert cookie.startswith(SECURE_COOKIE_NAME + "=")
            assert "secure" in parts
        else:
            assert cookie.startswith(COOKIE_NAME + "=")
            assert "secure" not in parts
    finally:
        await browser.close()


async def test_audit_log_is_append_only(browser: Browser) -> None:
    await browser.sign_in("ghost@example.com", PASSWORD)
    async with browser.database.session() as db:
        with pytest.raises(DBAPIError, match="append-only"):
            await db.execute(text("UPDATE bastion_audit_log SET subject = 'forged'"))
        await db.rollback()
        with pytest.raises(DBAPIError, match="append-only"):
            await db.execute(text("DELETE FROM bastion_audit_log"))
        await db.rollback()
    assert len(await audit_rows(browser)) == 1


async def test_requests_leave_no_connection_checked_out(browser: Browser) -> None:
    await browser.sign_up("ada@example.com", PASSWORD)
    for _ in range(5):
        await browser.client.get("/api/auth/session")
        await browser.sign_in("ada@example.com", "wrong password!")
        await browser.client.get("/account")
    assert browser.database.checked_out() == 0
