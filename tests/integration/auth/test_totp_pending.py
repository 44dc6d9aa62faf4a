"""The pending cookie alone authorises nothing, and no request sequence reaches a session
without a right code or an unused backup code (in process, SQLite and PostgreSQL).
"""

from __future__ import annotations

import random
from datetime import timedelta

import httpx
from sqlalchemy import update
from starlette.routing import Route

from bastion.auth._pending import MAX_FAILURES, PENDING_COOKIE
from bastion.auth._sessions import COOKIE_NAME
from bastion.db._models import PendingSignIn
from bastion.db._types import utcnow
from tests.integration.auth.conftest import Browser, inner_app
from tests.integration.auth.totp import (
    PASSWORD,
    code,
    enable_totp,
    password_step,
    second_step,
)

#: The /api/auth routes meant for visitors without a session (the rest need one).
PUBLIC = {
    "/api/auth/sign-up",
    "/api/auth/sign-in",
    "/api/auth/sign-out",
    "/api/auth/session",
    "/api/auth/password-reset",
    "/api/auth/password-reset/confirm",
    "/api/auth/sign-in/second-factor",
    # A passkey sign-in is a sign-in: it starts from no session (issue 24, item 3).
    "/api/auth/passkeys/sign-in/options",
    "/api/auth/passkeys/sign-in",
}
#: Known to need a session: each must answer the pending cookie alone exactly as no cookie.
SESSION_ROUTES = {
    ("GET", "/api/auth/sessions"),
    ("POST", "/api/auth/sessions/revoke-others"),
    ("DELETE", "/api/auth/sessions/{id}"),
    ("POST", "/api/auth/password"),
    ("POST", "/api/auth/totp/enroll"),
    ("POST", "/api/auth/totp/confirm"),
    ("POST", "/api/auth/totp/backup-codes"),
    ("DELETE", "/api/auth/totp"),
}
#: Every field any of them reads, each plausible, so each gets as far as its session check.
PLAUSIBLE = {
    "password": PASSWORD,
    "current_password": PASSWORD,
    "new_password": "violet lantern over quiet harbour 7",
    "code": "123456",
}
#: The example's pages that need a session: each sends the pending cookie alone to sign in.
PAGES = [
    ("GET", "/account"),
    ("GET", "/admin/audit"),
    ("POST", "/account/password"),
    ("POST", "/account/sessions/end-others"),
    ("POST", "/account/sessions/x/end"),
    ("POST", "/account/totp/enroll"),
    ("POST", "/account/totp/confirm"),
    ("POST", "/account/totp/backup-codes"),
    ("POST", "/account/totp/disable"),
]


def session_routes(browser: Browser) -> list[tuple[str, str]]:
    """Every (method, path) under /api/auth that is not for visitors, read from the router."""
    found = []
    for route in inner_app(browser.app).routes:
        path = getattr(route, "path", "")
        if isinstance(route, Route) and path.startswith("/api/auth/") and path not in PUBLIC:
            found += [(method, path) for method in route.methods or () if method != "HEAD"]
    return sorted(found)


async def test_the_pending_cookie_alone_authorises_nothing(browser: Browser) -> None:
    email = "pending.only@example.com"
    secret, _, step = await enable_totp(browser.client, email)
    await browser.client.post("/api/auth/sign-out")
    await password_step(browser.client, email)
    assert list(browser.client.cookies) == [PENDING_COOKIE]

    session = await browser.client.get("/api/auth/session")
    assert session.status_code == 200
    assert session.json() == {"user": None}
    anonymous = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=browser.app), base_url="http://testserver"
    )
    try:
        assert (await anonymous.get("/api/auth/session")).json() == {"user": None}
    finally:
        await anonymous.aclose()

    routes = session_routes(browser)
    assert set(routes) >= SESSION_ROUTES
    for method, path in routes:
        answer = await browser.client.request(method, path.replace("{id}", "x"), json=PLAUSIBLE)
        known = (method, path) in SESSION_ROUTES
        # Ours say "not signed in"; a route added later may refuse its body first: never a 2xx.
        assert answer.status_code == 401 if known else answer.status_code in (400, 401), (
            method,
            path,
            answer.status_code,
        )
        if known:
            assert answer.json()["reason"] == "NOT_SIGNED_IN", (method, path)
        assert COOKIE_NAME not in answer.cookies

    for method, path in PAGES:
        answer = await browser.client.request(method, path, data=PLAUSIBLE)
        assert answer.status_code == 303, (method, path)
        assert answer.headers["location"].startswith("/sign-in"), (method, path)

    # None of that spent the pending sign-in: the right code still completes it.
    assert (await second_step(browser.client, code=code(secret, step))).status_code == 200


class Model:
    """What the pending sign-in should be after each request: alive, and its wrong codes."""

    def __init__(self) -> None:
        self.alive = True
        self.failures = 0

    def wrong(self) -> str:
        if not self.alive:
            return "NO_PENDING_SIGN_IN"
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            self.alive = False
            return "TOO_MANY_CODES"
        return "WRONG_CODE"


async def test_no_sequence_reaches_a_session_without_a_right_code(browser: Browser) -> None:
    """Random sequences of what an attacker holding the password can send; after each
    request there is no session, and at the end an unused backup code opens one exactly
    when the model says the pending sign-in is still alive."""
    client = browser.client
    rng = random.Random(24)  # reproducible: the same sequences every run
    endings: set[bool] = set()
    for number in range(8):
        email = f"sequence.{number}@example.com"
        client.cookies.clear()
        # Only the confirmation needs the clock; the rest is wrong codes and backup codes.
        secret, backup_codes, step = await enable_totp(client, email, margin=1)
        await client.post("/api/auth/sign-out")
        # Spend one backup code in a real sign-in, to replay it below.
        await password_step(client, email)
        assert (await second_step(client, backup_code=backup_codes[0])).status_code == 200
        await client.post("/api/auth/sign-out")
        window = {code(secret, s) for s in (step - 1, step, step + 1)}
        wrong = next(c for c in (code(secret, step + n) for n in range(5, 50)) if c not in window)

        await password_step(client, email)
        model = Model()
        for _ in range(rng.randint(3, 9)):
            action = rng.choice(
                ["wrong", "reused", "used_backup", "bad_backup", "session", "expire", "again"]
            )
            if action == "session":
                assert (await client.get("/api/auth/sessions")).status_code == 401
            elif action == "expire":
                async with browser.database.session() as db:
                    await db.execute(
                        update(PendingSignIn).values(expires_at=utcnow() - timedelta(seconds=1))
                    )
                    await db.commit()
                model.alive = False
            elif action == "again":
                await password_step(client, email)
                model = Model()
            else:
                body = {
                    "wrong": {"code": wrong},
                    "reused": {"code": code(secret, step - 1)},  # the confirmation's step
                    "used_backup": {"backup_code": backup_codes[0]},
                    "bad_backup": {"backup_code": "zzzzz-zzzzz"},
                }[action]
                answer = await second_step(client, **body)
                assert answer.status_code == 401, (number, action)
                assert answer.json()["reason"] == model.wrong(), (number, action)
            assert (await client.get("/api/auth/session")).json() == {"user": None}
            assert COOKIE_NAME not in client.cookies
        last = await second_step(client, backup_code=backup_codes[1])
        endings.add(model.alive)
        if model.alive:
            assert last.status_code == 200, (number, last.text)
            assert COOKIE_NAME in client.cookies
        else:
            assert last.status_code == 401
            assert last.json()["reason"] == "NO_PENDING_SIGN_IN"
    assert endings == {True, False}  # the sequences reach both ends


async def test_five_wrong_codes_end_the_pending_sign_in(browser: Browser) -> None:
    email = "five.wrong@example.com"
    secret, _, step = await enable_totp(browser.client, email)
    await browser.client.post("/api/auth/sign-out")
    await password_step(browser.client, email)
    held = browser.client.cookies[PENDING_COOKIE]
    reasons = [
        (await second_step(browser.client, backup_code="zzzzz-zzzzz")).json()["reason"]
        for _ in range(MAX_FAILURES)
    ]
    assert reasons == ["WRONG_CODE"] * (MAX_FAILURES - 1) + ["TOO_MANY_CODES"]
    assert PENDING_COOKIE not in browser.client.cookies  # cleared with the fifth answer
    browser.client.cookies.set(PENDING_COOKIE, held)  # a copy kept by whoever held it
    late = await second_step(browser.client, code=code(secret, step))
    assert late.status_code == 401
    assert late.json()["reason"] == "NO_PENDING_SIGN_IN"
    assert COOKIE_NAME not in browser.client.cookies


async def test_no_or_an_expired_pending_cookie_is_401(browser: Browser) -> None:
    email = "expired.pending@example.com"
    secret, _, step = await enable_totp(browser.client, email)
    await browser.client.post("/api/auth/sign-out")
    nothing = await second_step(browser.client, code=code(secret, step))
    assert nothing.status_code == 401
    assert nothing.json()["reason"] == "NO_PENDING_SIGN_IN"
    browser.client.cookies.set(PENDING_COOKIE, "made-up")
    assert (await second_step(browser.client, code=code(secret, step))).status_code == 401

    await password_step(browser.client, email)
    async with browser.database.session() as db:
        await db.execute(update(PendingSignIn).values(expires_at=utcnow() - timedelta(seconds=1)))
        await db.commit()
    expired = await second_step(browser.client, code=code(secret, step))
    assert expired.status_code == 401
    assert expired.json()["reason"] == "NO_PENDING_SIGN_IN"
    assert COOKIE_NAME not in browser.client.cookies
