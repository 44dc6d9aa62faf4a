"""Passkeys over the JSON API, in process, on SQLite and PostgreSQL, with real cryptography.

The browser's half is :class:`tests.support.webauthn.SoftAuthenticator`: an
ES256 key made in the test, whose answers the server verifies as it would
Chromium's. Forging them shows each refusal under its own reason, audited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bastion.audit import (
    PASSKEY_REFUSED,
    PASSKEY_REGISTERED,
    PASSKEY_REMOVED,
    SIGN_IN_FAILED,
    SIGN_IN_SUCCEEDED,
)
from bastion.auth import classify_device
from bastion.auth._passkeys import delete_spent_challenges
from bastion.auth._pending import PENDING_COOKIE
from bastion.auth._sessions import COOKIE_NAME
from bastion.config import Settings, load_settings
from bastion.db import Passkey, WebAuthnChallenge
from bastion.db._types import utcnow
from bastion.mail import outbox
from tests.integration.auth.conftest import Browser
from tests.integration.auth.passwords import OLD_PASSWORD, audit_rows, next_message
from tests.support.webauthn import SoftAuthenticator, b64url

PASSWORD = OLD_PASSWORD
ORIGIN = "http://testserver"


async def enrol(browser: Browser, email: str) -> tuple[SoftAuthenticator, dict[str, Any]]:
    """Sign up ``email`` and register a passkey; the authenticator and the 201's body."""
    assert (await browser.sign_up(email, PASSWORD)).status_code == 201
    options = await browser.client.post(
        "/api/auth/passkeys/register/options", json={"password": PASSWORD}
    )
    assert options.status_code == 200, options.text
    authenticator = SoftAuthenticator(ORIGIN, "testserver")
    answer = await browser.client.post(
        "/api/auth/passkeys/register",
        json={**authenticator.create(options.json()), "name": "Test key"},
    )
    assert answer.status_code == 201, answer.text
    return authenticator, answer.json()


async def sign_in_options(browser: Browser) -> dict[str, Any]:
    answer = await browser.client.post("/api/auth/passkeys/sign-in/options")
    assert answer.status_code == 200, answer.text
    options: dict[str, Any] = answer.json()
    return options


async def sign_out(browser: Browser) -> None:
    assert (await browser.client.post("/api/auth/sign-out")).status_code == 200
    browser.client.cookies.clear()


async def refused(browser: Browser, assertion: dict[str, Any], reason: str) -> None:
    """The assertion is a 400 named ``reason``, audited with the client IP, and no session."""
    before = len(await audit_rows(browser, PASSKEY_REFUSED))
    answer = await browser.client.post("/api/auth/passkeys/sign-in", json=assertion)
    assert answer.status_code == 400, answer.text
    assert answer.json()["reason"] == reason
    assert COOKIE_NAME not in answer.cookies
    rows = await audit_rows(browser, PASSKEY_REFUSED)
    assert len(rows) == before + 1
    assert rows[0].details["reason"] == reason
    assert rows[0].client_ip == "127.0.0.1"


async def test_register_list_sign_in_without_a_password_and_remove(browser: Browser) -> None:
    email = "ada.passkey@example.com"
    assert (await browser.sign_up(email, PASSWORD)).status_code == 201

    wrong = await browser.client.post(
        "/api/auth/passkeys/register/options", json={"password": "not the password at all"}
    )
    assert wrong.status_code == 401
    failed = await audit_rows(browser, SIGN_IN_FAILED)
    assert failed[0].details == {"during": "passkey_register", "reason": "bad_password"}

    options = (
        await browser.client.post(
            "/api/auth/passkeys/register/options", json={"password": PASSWORD}
        )
    ).json()
    assert options["rp"]["id"] == "testserver"
    assert options["user"]["name"] == email
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["excludeCredentials"] == []
    authenticator = SoftAuthenticator(ORIGIN, "testserver")
    seen = outbox()
    created = await browser.client.post(
        "/api/auth/passkeys/register", json=authenticator.create(options)
    )
    assert created.status_code == 201, created.text
    passkey = created.json()
    assert set(passkey) == {"id", "name", "created_at"}
    assert passkey["name"] == classify_device("pytest-browser/1.0").label()  # the browser's
    registered = await audit_rows(browser, PASSKEY_REGISTERED)
    assert registered[0].details["passkey"] == passkey["id"]
    assert registered[0].client_ip == "127.0.0.1"
    await next_message(email, "A passkey was added to your account", seen)

    listed = (await browser.client.get("/api/auth/passkeys")).json()["passkeys"]
    assert listed == [{**passkey, "last_used_at": None}]
    again = await browser.client.post(
        "/api/auth/passkeys/register/options", json={"password": PASSWORD}
    )
    assert [c["id"] for c in again.json()["excludeCredentials"]] == [
        b64url(authenticator.credential_id)
    ]

    await sign_out(browser)
    assert (await browser.client.get("/api/auth/passkeys")).status_code == 401
    request = await sign_in_options(browser)
    assert request["allowCredentials"] == []
    assert request["rpId"] == "testserver"
    signed = await browser.client.post(
        "/api/auth/passkeys/sign-in", json=authenticator.get(request)
    )
    assert signed.status_code == 200, signed.text
    assert signed.json()["user"]["email"] == email
    assert (await browser.client.get("/api/auth/session")).json()["user"]["email"] == email
    succeeded = await audit_rows(browser, SIGN_IN_SUCCEEDED)
    assert succeeded[0].details == {"passkey": passkey["id"], "method": "passkey"}
    used = (await browser.client.get("/api/auth/passkeys")).json()["passkeys"][0]
    assert used["last_used_at"] is not None
    async with browser.database.session() as db:
        assert await db.scalar(select(Passkey.sign_count)) == authenticator.sign_count == 1

    gone = await browser.client.delete(f"/api/auth/passkeys/{passkey['id']}")
    assert gone.status_code == 204
    assert (await browser.client.delete(f"/api/auth/passkeys/{passkey['id']}")).status_code == 404
    assert (await browser.client.get("/api/auth/passkeys")).json() == {"passkeys": []}
    assert (await audit_rows(browser, PASSKEY_REMOVED))[0].details == {"passkey": passkey["id"]}
    await sign_out(browser)
    await refused(browser, authenticator.get(await sign_in_options(browser)), "credential")


@pytest.fixture
async def counted(settings: Settings) -> AsyncIterator[Browser]:
    """The app with its metrics on."""
    instance = Browser(settings.model_copy(update={"METRICS_ENABLED": True}))
    yield instance
    await instance.close()


async def test_each_forgery_is_refused_under_its_reason(counted: Browser) -> None:
    browser = counted
    authenticator, _ = await enrol(browser, "grace.forger@example.com")
    await sign_out(browser)

    options = await sign_in_options(browser)
    await refused(browser, authenticator.get(options, origin="http://evil.test"), "origin")
    await refused(browser, authenticator.get(options, rp_id="evil.test"), "rp_id")
    await refused(browser, authenticator.get({"challenge": "AAAA"}), "challenge")

    good = authenticator.get(options)
    assert (await browser.client.post("/api/auth/passkeys/sign-in", json=good)).status_code == 200
    await sign_out(browser)
    await refused(browser, good, "challenge")  # the same answer again: a replay

    # A cloned authenticator: its counter is behind the one we saw (and equal is not ahead).
    await refused(
        browser, authenticator.get(await sign_in_options(browser), sign_count=1), "sign_count"
    )
    await refused(
        browser,
        authenticator.get(await sign_in_options(browser), sign_count=authenticator.sign_count),
        "sign_count",
    )

    # Expired: five minutes after it was handed out, a challenge is worth nothing.
    late = await sign_in_options(browser)
    async with browser.database.session() as db:
        await db.execute(
            update(WebAuthnChallenge).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
    await refused(browser, authenticator.get(late, sign_count=100), "challenge")

    # A signature by another key over the same credential id.
    impostor = SoftAuthenticator(ORIGIN, "testserver", credential_id=authenticator.credential_id)
    impostor.user_handle = authenticator.user_handle
    await refused(
        browser, impostor.get(await sign_in_options(browser), sign_count=200), "signature"
    )

    rows = await audit_rows(browser, PASSKEY_REFUSED)
    assert len(rows) == 8
    assert {row.subject for row in rows} == {"grace.forger@example.com"}
    metrics = (await browser.client.get("/api/metrics")).text
    for outcome, count in (("enabled", 1), ("succeeded", 1), ("refused", 8)):
        line = f'bastion_second_factor_total{{method="passkey",outcome="{outcome}"}} {count}.0'
        assert line in metrics


async def test_registration_refuses_forged_credentials(browser: Browser) -> None:
    authenticator, _ = await enrol(browser, "alan.register@example.com")

    async def options() -> dict[str, Any]:
        answer = await browser.client.post(
            "/api/auth/passkeys/register/options", json={"password": PASSWORD}
        )
        result: dict[str, Any] = answer.json()
        return result

    async def register(credential: dict[str, Any], reason: str) -> None:
        answer = await browser.client.post("/api/auth/passkeys/register", json=credential)
        assert answer.status_code == 400, answer.text
        assert answer.json()["reason"] == reason
        row = (await audit_rows(browser, PASSKEY_REFUSED))[0]
        assert row.details["reason"] == reason
        assert row.details["ceremony"] == "register"

    fresh = SoftAuthenticator(ORIGIN, "testserver")
    # An id other than the one the authenticator attested: refused, and nothing kept.
    claimed = {**fresh.create(await options()), "id": "QUJD", "rawId": "QUJD"}
    answer = await browser.client.post("/api/auth/passkeys/register", json=claimed)
    assert answer.json()["reason"] == "malformed"
    await register(fresh.create(await options(), origin="https://evil.test"), "origin")
    await register(fresh.create(await options(), rp_id="evil.test"), "rp_id")
    # The same authenticator again (excludeCredentials ignored): its credential is ours already.
    spent = authenticator.create(await options())
    await register(spent, "duplicate")
    await register(spent, "challenge")  # the same answer again: its challenge is spent
    assert len((await browser.client.get("/api/auth/passkeys")).json()["passkeys"]) == 1


async def test_a_passkey_completes_a_password_sign_in(browser: Browser) -> None:
    authenticator, _ = await enrol(browser, "hedy.second@example.com")
    other, _ = await enrol(browser, "other.account@example.com")  # signs in as this one
    await sign_out(browser)

    first = await browser.sign_in("hedy.second@example.com", PASSWORD)
    assert first.json() == {"second_factor": "required", "methods": ["passkey"]}
    assert PENDING_COOKIE in browser.client.cookies
    # The pending cookie alone authorises nothing.
    assert (await browser.client.get("/api/auth/session")).json() == {"user": None}
    assert (await browser.client.get("/api/auth/passkeys")).status_code == 401

    options = await sign_in_options(browser)
    assert [c["id"] for c in options["allowCredentials"]] == [b64url(authenticator.credential_id)]
    # Another account's passkey cannot finish this account's sign-in.
    await refused(browser, other.get(options), "credential")
    # The challenge was bound to the pending account, and spent by nobody yet.
    done = await browser.client.post("/api/auth/passkeys/sign-in", json=authenticator.get(options))
    assert done.status_code == 200, done.text
    assert done.json()["user"]["email"] == "hedy.second@example.com"
    assert PENDING_COOKIE not in browser.client.cookies
    session = (await browser.client.get("/api/auth/session")).json()
    assert session["user"]["email"] == "hedy.second@example.com"
    succeeded = await audit_rows(browser, SIGN_IN_SUCCEEDED)
    assert succeeded[0].details == {"second_factor": "passkey"}


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"id": 1},
        {"id": "abc", "rawId": "abd", "type": "public-key", "response": {}},
        {"id": "abc", "rawId": "abc", "type": "public-key", "response": {"clientDataJSON": "!"}},
        {
            "id": "abc",
            "rawId": "abc",
            "type": "public-key",
            "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"},
        },
        {"id": "abc", "rawId": "abc", "type": "public-key", "response": [], "name": 7},
        {"id": "A" * 2000, "rawId": "A" * 2000, "type": "public-key", "response": {}},
    ],
)
async def test_malformed_answers_are_400_never_500(browser: Browser, body: object) -> None:
    for path in ("/api/auth/passkeys/sign-in", "/api/auth/passkeys/register"):
        answer = await browser.client.post(path, json=body)
        assert answer.status_code in (400, 401), answer.text
        if path.endswith("sign-in"):
            assert answer.status_code == 400
            assert answer.json()["reason"] in ("malformed", "name")
    # A plain 400: it proves nothing about anyone, so it writes nothing.
    assert await audit_rows(browser, PASSKEY_REFUSED) == []


@pytest.fixture
async def strict(database_url: str) -> AsyncIterator[Browser]:
    """The app with a sign-in limit of three attempts a minute per IP."""
    settings: Settings = load_settings(
        DATABASE_URL=database_url,
        APP_URL=ORIGIN,
        ALLOWED_HOSTS="testserver",
        SIGN_IN_RATE_LIMIT="3/minute",
        SIGN_UP_RATE_LIMIT="1000/minute",
        PASSWORD_HASH_PROFILE="cheapest",
    )
    instance = Browser(settings)
    yield instance
    await instance.close()


async def test_bad_assertions_count_against_the_sign_in_limit(strict: Browser) -> None:
    authenticator = SoftAuthenticator(ORIGIN, "testserver")
    options = await sign_in_options(strict)
    for _ in range(3):
        await refused(strict, authenticator.get(options), "credential")
    before = len(await audit_rows(strict, PASSKEY_REFUSED))
    limited = await strict.client.post(
        "/api/auth/passkeys/sign-in", json=authenticator.get(options)
    )
    assert limited.status_code == 429
    assert limited.json()["reason"] == "RATE_LIMITED"
    assert "Retry-After" in limited.headers
    # Refused over the limit: no database work, so no new audit row.
    assert len(await audit_rows(strict, PASSKEY_REFUSED)) == before
    # The per-IP limit is the password sign-in's own.
    password = await strict.sign_in("nobody@example.com", PASSWORD)
    assert password.status_code == 429


async def test_a_new_secret_key_keeps_the_passkeys(browser: Browser, settings: Settings) -> None:
    """Rotating SECRET_KEY signs everyone out; their passkeys still sign them back in."""
    authenticator, _ = await enrol(browser, "rotation@example.com")
    rotated = Browser(settings.model_copy(update={"SECRET_KEY": "another-secret-" + "k" * 40}))
    try:
        options = await sign_in_options(rotated)
        answer = await rotated.client.post(
            "/api/auth/passkeys/sign-in", json=authenticator.get(options)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["user"]["email"] == "rotation@example.com"
    finally:
        await rotated.close()


async def test_one_assertion_sent_twice_at_once_signs_in_once(browser: Browser) -> None:
    """The challenge is spent by one conditional UPDATE: of two racing copies, one wins."""
    authenticator, _ = await enrol(browser, "racer@example.com")
    await sign_out(browser)
    assertion = authenticator.get(await sign_in_options(browser))
    answers = await asyncio.gather(
        *(browser.client.post("/api/auth/passkeys/sign-in", json=assertion) for _ in range(2))
    )
    assert sorted(answer.status_code for answer in answers) == [200, 400]
    assert [a.json()["reason"] for a in answers if a.status_code == 400] == ["challenge"]


async def test_the_sweep_deletes_only_expired_challenges(browser: Browser) -> None:
    await sign_in_options(browser)
    await sign_in_options(browser)
    async with browser.database.session() as db:
        first = await db.scalar(select(WebAuthnChallenge.id).order_by(WebAuthnChallenge.id))
        await db.execute(
            update(WebAuthnChallenge)
            .where(WebAuthnChallenge.id == first)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await db.commit()
        assert await delete_spent_challenges(db, utcnow()) == 1
        left = list(await db.scalars(select(WebAuthnChallenge.id)))
    assert first not in left
    assert len(left) == 1
