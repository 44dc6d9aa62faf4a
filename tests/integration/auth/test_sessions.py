"""Sessions you can see and end, through the JSON API, on SQLite and PostgreSQL (in-process).

Each "device" is its own cookie jar and User-Agent on the same app, as two
browsers of one person would be. The security notices are read from the
console transport's outbox once the inline job has sent them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bastion.audit import SESSION_REVOKED, SIGN_IN_NEW_DEVICE, SIGN_OUT, recent
from bastion.auth._devices import forget_stale
from bastion.auth._sessions import COOKIE_NAME
from bastion.config import Settings
from bastion.db import AuditLog, UserSession
from bastion.db._models import KnownDevice
from bastion.db._types import utcnow
from bastion.mail import Message, outbox
from tests.integration.auth.conftest import Browser

PASSWORD = "correct horse battery staple 42"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
SESSION_KEYS = {"id", "created_at", "last_seen_at", "expires_at", "ip", "user_agent", "current"}
NEW_SIGN_IN = "New sign-in to your account"
SESSION_ENDED = "A session of your account was ended"


def unique_email() -> str:
    """The outbox is per process and outlives a test: each test mails its own address."""
    return f"ada.{secrets.token_hex(4)}@example.com"


class Devices:
    """Several cookie jars (devices) on one in-process app."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.clients: list[httpx.AsyncClient] = []

    def new(self, user_agent: str, ip: str = "127.0.0.1") -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.browser.app, client=(ip, 40000)),
            base_url="http://testserver",
            headers={"sec-fetch-site": "same-origin", "user-agent": user_agent},
        )
        self.clients.append(client)
        return client

    async def signed_in(
        self, email: str, user_agent: str, ip: str = "127.0.0.1"
    ) -> httpx.AsyncClient:
        client = self.new(user_agent, ip)
        response = await client.post(
            "/api/auth/sign-in", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def devices(browser: Browser) -> AsyncIterator[Devices]:
    made = Devices(browser)
    yield made
    await made.close()


async def audit_rows(browser: Browser, action: str) -> list[AuditLog]:
    async with browser.database.session() as db:
        return await recent(db, limit=100, action=action)


async def mail(to: str, subject: str, count: int) -> list[Message]:
    """Wait (generously) until ``count`` messages with ``subject`` went to ``to``; return them."""
    found: list[Message] = []
    for _ in range(200):
        found = [m for m in outbox() if m.to == to and m.subject == subject]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.025)
    raise AssertionError(f"{len(found)} of {count} messages {subject!r} to {to}")


async def session_status(client: httpx.AsyncClient) -> int:
    return (await client.get("/api/auth/session")).status_code


def parse_utc(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


async def test_the_list_shows_every_session_newest_first_and_no_secret(
    browser: Browser, devices: Devices
) -> None:
    email = unique_email()
    first = devices.new(FIREFOX_LINUX)
    assert (
        await first.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    ).status_code == 201
    second = await devices.signed_in(email, CHROME_WINDOWS, ip="198.51.100.7")
    listed = await first.get("/api/auth/sessions")
    assert listed.status_code == 200
    assert listed.headers["cache-control"] == "no-store"
    sessions = listed.json()["sessions"]
    assert [set(each) for each in sessions] == [SESSION_KEYS, SESSION_KEYS]
    # Newest first: the sign-in on the second device, then the sign-up's own session.
    assert [each["user_agent"] for each in sessions] == [CHROME_WINDOWS, FIREFOX_LINUX]
    assert [each["ip"] for each in sessions] == ["198.51.100.7", "127.0.0.1"]
    assert [each["current"] for each in sessions] == [False, True]
    for each in sessions:
        created, seen, expires = (
            parse_utc(each[k]) for k in ("created_at", "last_seen_at", "expires_at")
        )
        assert created <= seen < expires
        assert abs(utcnow() - created) < timedelta(minutes=5)
    # The other device sees the same two, with itself as the current one.
    theirs = (await second.get("/api/auth/sessions")).json()["sessions"]
    assert [each["current"] for each in theirs] == [True, False]
    assert [each["id"] for each in theirs] == [each["id"] for each in sessions]

    async with browser.database.session() as db:
        rows = (await db.scalars(select(UserSession).order_by(UserSession.id))).all()
    assert sorted(each["id"] for each in sessions) == sorted(row.public_id for row in rows)
    # No token, no token hash, no row id anywhere in the answer.
    body = listed.text
    for secret in (first.cookies[COOKIE_NAME], second.cookies[COOKIE_NAME]):
        assert secret not in body
    for row in rows:
        assert row.token_hash not in body
        assert row.public_id != str(row.id)


async def test_anonymous_and_ended_sessions_get_401(browser: Browser, devices: Devices) -> None:
    anonymous = devices.new(FIREFOX_LINUX)
    for method, path in (
        ("GET", "/api/auth/sessions"),
        ("POST", "/api/auth/sessions/revoke-others"),
        ("DELETE", "/api/auth/sessions/whatever"),
    ):
        refused = await anonymous.request(method, path)
        assert refused.status_code == 401, (method, path)
        assert refused.json() == {
            "error": "Unauthorized",
            "reason": "NOT_SIGNED_IN",
            "hint": "sign in",
        }
    # No cookie at all is an anonymous visitor, not a refusal.
    session = await anonymous.get("/api/auth/session")
    assert (session.status_code, session.json()) == (200, {"user": None})
    # A cookie that names no session is a 401 that clears it, on every endpoint.
    anonymous.cookies.set(COOKIE_NAME, "a-token-that-never-was")
    for path in ("/api/auth/session", "/api/auth/sessions"):
        stale = await anonymous.get(path)
        assert stale.status_code == 401
        assert stale.json()["reason"] == "SESSION_ENDED"
        assert stale.headers["set-cookie"].startswith(f'{COOKIE_NAME}=""')
        anonymous.cookies.set(COOKIE_NAME, "a-token-that-never-was")


async def test_ending_another_session_refuses_it_at_once(
    browser: Browser, devices: Devices
) -> None:
    email = unique_email()
    mine = devices.new(FIREFOX_LINUX)
    await mine.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    lost = await devices.signed_in(email, CHROME_WINDOWS, ip="203.0.113.9")
    assert await session_status(lost) == 200
    (other,) = [
        s for s in (await mine.get("/api/auth/sessions")).json()["sessions"] if not s["current"]
    ]

    ended = await mine.delete(f"/api/auth/sessions/{other['id']}")
    assert ended.status_code == 204
    assert ended.content == b""
    assert "set-cookie" not in ended.headers  # the caller stays signed in
    assert await session_status(mine) == 200
    refused = await lost.get("/api/auth/session")
    assert refused.status_code == 401
    assert refused.json()["reason"] == "SESSION_ENDED"
    assert [s["current"] for s in (await mine.get("/api/auth/sessions")).json()["sessions"]] == [
        True
    ]

    (row,) = await audit_rows(browser, SESSION_REVOKED)
    assert (row.subject, row.client_ip, row.user_agent) == (email, "127.0.0.1", FIREFOX_LINUX)
    assert row.details == {"session": other["id"]}
    (notice,) = await mail(email, SESSION_ENDED, 1)
    assert "127.0.0.1" in notice.text
    assert FIREFOX_LINUX in notice.text
    # Ending it again: it no longer exists.
    again = await mine.delete(f"/api/auth/sessions/{other['id']}")
    assert again.status_code == 404


async def test_another_users_session_is_a_404_like_one_that_never_was(
    browser: Browser, devices: Devices
) -> None:
    ada, bob = devices.new(FIREFOX_LINUX), devices.new(CHROME_WINDOWS)
    await ada.post("/api/auth/sign-up", json={"email": unique_email(), "password": PASSWORD})
    await bob.post("/api/auth/sign-up", json={"email": unique_email(), "password": PASSWORD})
    (bobs,) = (await bob.get("/api/auth/sessions")).json()["sessions"]

    theirs = await ada.delete(f"/api/auth/sessions/{bobs['id']}")
    never = await ada.delete("/api/auth/sessions/" + secrets.token_urlsafe(16))
    too_long = await ada.delete("/api/auth/sessions/" + "x" * 500)
    assert theirs.status_code == never.status_code == too_long.status_code == 404
    assert theirs.content == never.content == too_long.content
    assert theirs.headers["content-type"] == never.headers["content-type"]
    assert json.loads(never.content)["reason"] == "NO_SUCH_SESSION"
    assert await session_status(bob) == 200  # untouched
    assert await audit_rows(browser, SESSION_REVOKED) == []


async def test_ending_ones_own_session_signs_out(browser: Browser, devices: Devices) -> None:
    email = unique_email()
    mine = devices.new(FIREFOX_LINUX)
    await mine.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    (own,) = (await mine.get("/api/auth/sessions")).json()["sessions"]
    token = mine.cookies[COOKIE_NAME]

    ended = await mine.delete(f"/api/auth/sessions/{own['id']}")
    assert ended.status_code == 204
    assert ended.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    assert COOKIE_NAME not in mine.cookies
    assert (await mine.get("/api/auth/session")).json() == {"user": None}
    mine.cookies.set(COOKIE_NAME, token)
    assert await session_status(mine) == 401
    # Audited as the sign-out it is; no notice, nothing "revoked".
    (row,) = await audit_rows(browser, SIGN_OUT)
    assert row.details == {"via": "sessions"}
    assert await audit_rows(browser, SESSION_REVOKED) == []


async def test_revoke_others_keeps_only_the_current_session(
    browser: Browser, devices: Devices
) -> None:
    email = unique_email()
    mine = devices.new(FIREFOX_LINUX)
    await mine.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    others = [
        await devices.signed_in(email, CHROME_WINDOWS, ip="203.0.113.9"),
        await devices.signed_in(email, SAFARI_IPHONE, ip="2001:db8::1"),
    ]
    bystander = devices.new(CHROME_WINDOWS)
    await bystander.post("/api/auth/sign-up", json={"email": unique_email(), "password": PASSWORD})

    revoked = await mine.post("/api/auth/sessions/revoke-others")
    assert (revoked.status_code, revoked.json()) == (200, {"revoked": 2})
    assert await session_status(mine) == 200
    assert [await session_status(other) for other in others] == [401, 401]
    assert await session_status(bystander) == 200  # another user's sessions stay
    (own,) = (await mine.get("/api/auth/sessions")).json()["sessions"]
    assert own["current"] is True

    (row,) = await audit_rows(browser, SESSION_REVOKED)
    assert row.client_ip == "127.0.0.1"
    assert row.details == {"count": 2, "kept": own["id"]}
    await mail(email, SESSION_ENDED, 1)
    # Nothing left to end: no row, no notice (the next notice proves the queue ran).
    assert (await mine.post("/api/auth/sessions/revoke-others")).json() == {"revoked": 0}
    assert len(await audit_rows(browser, SESSION_REVOKED)) == 1
    await devices.signed_in(email, SAFARI_IPHONE, ip="192.0.2.1")  # new: a notice
    await mail(email, NEW_SIGN_IN, 1)
    assert len([m for m in outbox() if m.to == email and m.subject == SESSION_ENDED]) == 1


async def test_sign_out_clears_site_data(browser: Browser) -> None:
    await browser.sign_up(unique_email(), PASSWORD)
    out = await browser.client.post("/api/auth/sign-out")
    assert out.headers["clear-site-data"] == '"cache", "cookies", "storage"'
    await browser.sign_up(unique_email(), PASSWORD)
    page = await browser.client.post("/sign-out")
    assert page.status_code == 303
    assert page.headers["clear-site-data"] == '"cache", "cookies", "storage"'


async def test_a_sign_in_from_a_new_device_is_audited_and_mailed_once(
    browser: Browser, devices: Devices
) -> None:
    email = unique_email()
    first = devices.new(FIREFOX_LINUX, ip="198.51.100.10")
    await first.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    # The sign-up's own device, and a newer Firefox on the same /24: known, silent.
    await devices.signed_in(email, FIREFOX_LINUX, ip="198.51.100.10")
    await devices.signed_in(email, FIREFOX_LINUX.replace("128.0", "133.0"), ip="198.51.100.99")
    assert await audit_rows(browser, SIGN_IN_NEW_DEVICE) == []

    await devices.signed_in(email, CHROME_WINDOWS, ip="198.51.100.10")  # new browser and system
    (row,) = await audit_rows(browser, SIGN_IN_NEW_DEVICE)
    assert (row.subject, row.client_ip, row.user_agent) == (email, "198.51.100.10", CHROME_WINDOWS)
    (notice,) = await mail(email, NEW_SIGN_IN, 1)
    assert "198.51.100.10" in notice.text
    assert PASSWORD not in notice.text

    await devices.signed_in(email, CHROME_WINDOWS, ip="198.51.100.10")  # the same again
    await devices.signed_in(email, FIREFOX_LINUX, ip="198.51.101.10")  # another /24: new
    assert len(await audit_rows(browser, SIGN_IN_NEW_DEVICE)) == 2
    assert len(await mail(email, NEW_SIGN_IN, 2)) == 2
    await devices.signed_in(email, SAFARI_IPHONE, ip="2001:db8:1:2::5")
    await devices.signed_in(email, SAFARI_IPHONE, ip="2001:db8:1:2::ffff")  # same /64
    assert len(await audit_rows(browser, SIGN_IN_NEW_DEVICE)) == 3

    # A device unused for more than 30 days is new again; only a keyed hash is stored.
    async with browser.database.session() as db:
        stored = (await db.scalars(select(KnownDevice))).all()
        assert len(stored) == 4
        assert all(len(each.fingerprint) == 64 for each in stored)
        await db.execute(update(KnownDevice).values(last_seen_at=utcnow() - timedelta(days=31)))
        await db.commit()
    await devices.signed_in(email, CHROME_WINDOWS, ip="198.51.100.10")
    assert len(await audit_rows(browser, SIGN_IN_NEW_DEVICE)) == 4
    await devices.signed_in(email, CHROME_WINDOWS, ip="198.51.100.10")
    assert len(await audit_rows(browser, SIGN_IN_NEW_DEVICE)) == 4
    assert len(await mail(email, NEW_SIGN_IN, 4)) == 4
    # The periodic cleanup forgets the devices unused for 30 days (all but the last one).
    async with browser.database.session() as db:
        assert await forget_stale(db, utcnow()) == 3
        (kept,) = (await db.scalars(select(KnownDevice))).all()
    assert utcnow() - kept.last_seen_at < timedelta(minutes=5)


async def test_revocations_are_counted(settings: Settings) -> None:
    browser = Browser(settings.model_copy(update={"METRICS_ENABLED": True}))
    devices = Devices(browser)
    try:
        email = unique_email()
        mine = devices.new(FIREFOX_LINUX)
        await mine.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
        one = await devices.signed_in(email, CHROME_WINDOWS)
        for _ in range(2):
            await devices.signed_in(email, SAFARI_IPHONE)
        (other,) = [
            s for s in (await one.get("/api/auth/sessions")).json()["sessions"] if s["current"]
        ]
        assert (await mine.delete(f"/api/auth/sessions/{other['id']}")).status_code == 204
        assert (await mine.post("/api/auth/sessions/revoke-others")).json() == {"revoked": 2}
        text = (await mine.get("/api/metrics")).text
        assert 'bastion_sessions_revoked_total{reason="ended"} 1.0' in text
        assert 'bastion_sessions_revoked_total{reason="others"} 2.0' in text
    finally:
        await devices.close()
        await browser.close()
