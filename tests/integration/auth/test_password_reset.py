"""Password reset by email, in process, on SQLite and PostgreSQL.

The link comes from the console transport's outbox once the inline job ran.
The request's timing is not asserted here (``bench/`` measures speed): the
known and unknown paths are one path by construction (see
:mod:`bastion.auth._resets`); what is asserted is that their answers are
identical and that the difference lies only in the job's audit row.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from bastion.audit import PASSWORD_RESET_COMPLETED, PASSWORD_RESET_REQUESTED
from bastion.auth._sessions import hash_token
from bastion.config import Settings
from bastion.db._models import PasswordReset
from bastion.db._types import utcnow
from bastion.mail import outbox
from tests.integration.auth.conftest import Browser
from tests.integration.auth.passwords import (
    NEW_PASSWORD,
    OLD_PASSWORD,
    audit_rows,
    next_message,
    request_reset,
    wait_for_audit,
)

EMAIL = "ada@example.com"
#: Headers that differ between any two requests (the request id, the date).
PER_REQUEST = {"x-request-id", "date"}


def client_from(browser: Browser, ip: str) -> httpx.AsyncClient:
    """Another client of the same app, from ``ip``, with its own cookies."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=browser.app, client=(ip, 40001)),
        base_url="http://testserver",
        headers={"sec-fetch-site": "same-origin", "user-agent": "other-device/1.0"},
    )


async def confirm(browser: Browser, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await browser.client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": password}
    )


async def test_known_and_unknown_emails_get_the_same_answer(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    known = await browser.client.post("/api/auth/password-reset", json={"email": EMAIL})
    unknown = await browser.client.post(
        "/api/auth/password-reset", json={"email": "nobody@example.com"}
    )
    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content == b'{"status":"sent"}'

    def fixed(response: httpx.Response) -> dict[str, str]:
        return {k: v for k, v in response.headers.items() if k not in PER_REQUEST}

    assert fixed(known) == fixed(unknown)
    assert known.headers["cache-control"] == "no-store"

    # The difference is the job's: one audit row each, whether an account matched in details.
    rows = await wait_for_audit(browser, PASSWORD_RESET_REQUESTED, 2)
    by_subject = {row.subject: row for row in rows}
    assert by_subject[EMAIL].details == {"account": True, "attempt": 1}
    assert by_subject["nobody@example.com"].details == {"account": False, "attempt": 1}
    assert {row.outcome for row in rows} == {"success"}
    assert {row.client_ip for row in rows} == {"127.0.0.1"}
    # One token was made, for the account only; the raw token is stored nowhere.
    async with browser.database.session() as db:
        resets = list((await db.scalars(select(PasswordReset))).all())
    assert len(resets) == 1
    assert resets[0].ip == "127.0.0.1"


async def test_the_link_resets_once_and_ends_every_session(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    laptop = client_from(browser, "127.0.0.9")
    try:
        signed = await laptop.post(
            "/api/auth/sign-in", json={"email": EMAIL, "password": OLD_PASSWORD}
        )
        assert signed.status_code == 200
        token = await request_reset(browser, EMAIL)
        assert len(token) >= 43  # 32 random bytes, URL-safe base64
        async with browser.database.session() as db:
            stored = await db.scalar(select(PasswordReset.token_hash))
        assert stored == hash_token(token, browser.auth.sessions.policy.secret)
        assert stored != token

        seen = outbox()
        done = await laptop.post(
            "/api/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
        )
        assert done.status_code == 200, done.text
        assert done.json() == {"status": "reset"}
        # Every session: the one that confirmed (its cookie cleared: anonymous now) and
        # the one that did not (its cookie names an ended session).
        assert (await laptop.get("/api/auth/session")).json() == {"user": None}
        ended = await browser.client.get("/api/auth/session")
        assert ended.status_code == 401
        assert ended.json()["reason"] == "SESSION_ENDED"
    finally:
        await laptop.aclose()

    again = await confirm(browser, token, "yet another long passphrase here 9")
    assert again.status_code == 400
    assert again.json()["reason"] == "used"
    assert (await browser.sign_in(EMAIL, OLD_PASSWORD)).status_code == 401
    assert (await browser.sign_in(EMAIL, NEW_PASSWORD)).status_code == 200

    rows = await audit_rows(browser, PASSWORD_RESET_COMPLETED)
    assert len(rows) == 1
    assert (rows[0].subject, rows[0].client_ip) == (EMAIL, "127.0.0.9")
    assert rows[0].details == {"sessions_ended": 2}
    notice = await next_message(EMAIL, "Your password was reset", seen)
    assert token not in notice.text
    assert NEW_PASSWORD not in notice.text


async def test_a_newer_request_spends_the_older_link(browser: Browser) -> None:
    """An older link after a newer request is ``used``: spent, by the newer request."""
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    older = await request_reset(browser, EMAIL)
    newer = await request_reset(browser, EMAIL)
    assert older != newer
    refused = await confirm(browser, older)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "used"
    assert (await confirm(browser, newer)).status_code == 200


async def test_an_expired_link_is_refused(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    token = await request_reset(browser, EMAIL)
    async with browser.database.session() as db:
        await db.execute(update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
        await db.commit()
    refused = await confirm(browser, token)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "expired"
    assert (await browser.sign_in(EMAIL, OLD_PASSWORD)).status_code == 200


@pytest.mark.parametrize("token", ["garbage", "", "x" * 5000, "A" * 43])
async def test_an_unknown_token_is_invalid(browser: Browser, token: str) -> None:
    refused = await confirm(browser, token)
    assert refused.status_code == 400
    assert refused.json()["reason"] == "invalid"
    assert refused.headers["cache-control"] == "no-store"


async def test_a_refused_password_keeps_the_link(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    token = await request_reset(browser, EMAIL)
    refused = await confirm(browser, token, "short")
    assert refused.status_code == 400
    assert refused.json()["reason"] == "too_short"
    assert (await confirm(browser, token)).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/password-reset", {"email": "not an email"}),
        ("/api/auth/password-reset", {"email": 42}),
        ("/api/auth/password-reset", ["ada@example.com"]),
        ("/api/auth/password-reset/confirm", {"token": "t"}),
        ("/api/auth/password-reset/confirm", {"token": None, "password": NEW_PASSWORD}),
    ],
)
async def test_malformed_requests_are_400(browser: Browser, path: str, body: object) -> None:
    answer = await browser.client.post(path, json=body)
    assert answer.status_code == 400


async def test_requests_are_limited_per_ip_and_per_account(settings: Settings) -> None:
    limited = Browser(
        settings.model_copy(update={"PASSWORD_RESET_RATE_LIMIT": "2/hour", "METRICS_ENABLED": True})
    )
    try:
        # Per IP: any emails, known or not, from one address.
        for n in range(2):
            answer = await limited.client.post(
                "/api/auth/password-reset", json={"email": f"someone{n}@example.com"}
            )
            assert answer.status_code == 202
        refused = await limited.client.post(
            "/api/auth/password-reset", json={"email": "someone9@example.com"}
        )
        assert refused.status_code == 429
        assert refused.json()["reason"] == "RATE_LIMITED"
        assert int(refused.headers["retry-after"]) > 0
        assert refused.headers["ratelimit-limit"] == "2"
        assert refused.headers["ratelimit-remaining"] == "0"

        # Per account: one email (here with no account) from many addresses.
        for n in range(2):
            async with client_from(limited, f"10.0.0.{n + 1}") as other:
                answer = await other.post(
                    "/api/auth/password-reset", json={"email": "target@example.com"}
                )
                assert answer.status_code == 202
        async with client_from(limited, "10.0.0.99") as other:
            refused = await other.post(
                "/api/auth/password-reset", json={"email": "Target@Example.com"}
            )
            assert refused.status_code == 429
            assert "retry-after" in refused.headers
            # The same address asking about another email is not refused: the limit was the account's.
            answer = await other.post(
                "/api/auth/password-reset", json={"email": "bystander@example.com"}
            )
            assert answer.status_code == 202

        await wait_for_audit(limited, PASSWORD_RESET_REQUESTED, 5)
        metrics = (await limited.client.get("/api/metrics")).text
        assert 'bastion_password_resets_total{outcome="requested"} 5.0' in metrics
        assert 'bastion_password_resets_total{outcome="limited"} 2.0' in metrics
        assert 'bastion_rate_limit_hits_total{limiter="password_reset"} 2.0' in metrics
    finally:
        await limited.close()


async def test_confirm_outcomes_are_counted(settings: Settings) -> None:
    counted = Browser(settings.model_copy(update={"METRICS_ENABLED": True}))
    try:
        await counted.sign_up(EMAIL, OLD_PASSWORD)
        token = await request_reset(counted, EMAIL)
        assert (await confirm(counted, "garbage")).status_code == 400
        assert (await confirm(counted, token)).status_code == 200
        assert (await confirm(counted, token)).status_code == 400
        metrics = (await counted.client.get("/api/metrics")).text
        for outcome in ("requested", "invalid", "completed", "used"):
            assert f'bastion_password_resets_total{{outcome="{outcome}"}} 1.0' in metrics
    finally:
        await counted.close()
