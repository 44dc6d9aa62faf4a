"""POST /api/auth/password, in process, on SQLite and PostgreSQL.

A wrong current password is a failed sign-in (the limit, the audit row); a
right one ends every other session and gives this one a new token.
"""

from __future__ import annotations

import httpx
import pytest

from bastion.audit import PASSWORD_CHANGED, SIGN_IN_FAILED
from bastion.auth._sessions import COOKIE_NAME
from bastion.config import Settings
from bastion.mail import outbox
from tests.integration.auth.conftest import Browser
from tests.integration.auth.passwords import (
    NEW_PASSWORD,
    OLD_PASSWORD,
    audit_rows,
    next_message,
    wait_for_audit,
)

EMAIL = "ada@example.com"


def change(current: str, new: str) -> dict[str, str]:
    return {"current_password": current, "new_password": new}


def other_device(browser: Browser, ip: str = "127.0.0.9") -> httpx.AsyncClient:
    """A second client of the same app, with its own cookies (another laptop)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=browser.app, client=(ip, 40001)),
        base_url="http://testserver",
        headers={"sec-fetch-site": "same-origin", "user-agent": "other-device/1.0"},
    )


async def signed_in_user(client: httpx.AsyncClient) -> object:
    """The user the client's cookie names, or None when it names no live session (a 401)."""
    answer = await client.get("/api/auth/session")
    if answer.status_code == 401:
        assert answer.json()["reason"] == "SESSION_ENDED"
        return None
    return answer.json()["user"]


async def test_a_change_ends_the_other_sessions_and_rotates_this_one(browser: Browser) -> None:
    assert (await browser.sign_up(EMAIL, OLD_PASSWORD)).status_code == 201
    old_cookie = browser.client.cookies[COOKIE_NAME]
    laptop = other_device(browser)
    try:
        signed = await laptop.post(
            "/api/auth/sign-in", json={"email": EMAIL, "password": OLD_PASSWORD}
        )
        assert signed.status_code == 200
        assert await signed_in_user(laptop) is not None
        seen = outbox()

        answer = await browser.client.post(
            "/api/auth/password", json=change(OLD_PASSWORD, NEW_PASSWORD)
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "changed"}
        assert answer.headers["cache-control"] == "no-store"
        new_cookie = answer.cookies[COOKIE_NAME]
        assert new_cookie != old_cookie

        # This browser goes on with the new cookie; the laptop and the old value are out.
        assert (await signed_in_user(browser.client)) == {"id": 1, "email": EMAIL, "admin": False}
        assert await signed_in_user(laptop) is None
        browser.client.cookies.set(COOKIE_NAME, old_cookie)
        assert await signed_in_user(browser.client) is None
    finally:
        await laptop.aclose()

    # The password itself changed.
    assert (await browser.sign_in(EMAIL, OLD_PASSWORD)).status_code == 401
    assert (await browser.sign_in(EMAIL, NEW_PASSWORD)).status_code == 200

    rows = await audit_rows(browser, PASSWORD_CHANGED)
    assert len(rows) == 1
    assert (rows[0].subject, rows[0].client_ip) == (EMAIL, "127.0.0.1")
    assert rows[0].details == {"sessions_ended": 1}
    notice = await next_message(EMAIL, "Your password was changed", seen)
    assert NEW_PASSWORD not in notice.text
    assert OLD_PASSWORD not in notice.text
    assert "127.0.0.1" in notice.text


async def test_the_form_body_works_too(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    answer = await browser.client.post(
        "/api/auth/password", data=change(OLD_PASSWORD, NEW_PASSWORD)
    )
    assert answer.status_code == 200, answer.text
    assert (await browser.sign_in(EMAIL, NEW_PASSWORD)).status_code == 200


async def test_signed_out_is_401(browser: Browser) -> None:
    answer = await browser.client.post(
        "/api/auth/password", json=change(OLD_PASSWORD, NEW_PASSWORD)
    )
    assert answer.status_code == 401
    assert answer.json()["reason"] == "NOT_SIGNED_IN"
    browser.client.cookies.set(COOKIE_NAME, "no-such-session")
    answer = await browser.client.post(
        "/api/auth/password", json=change(OLD_PASSWORD, NEW_PASSWORD)
    )
    assert answer.status_code == 401


async def test_a_wrong_current_password_is_a_failed_sign_in(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    answer = await browser.client.post(
        "/api/auth/password", json=change("not the password at all", NEW_PASSWORD)
    )
    assert answer.status_code == 401
    assert answer.json() == {"error": "the current password is wrong"}
    failed = await audit_rows(browser, SIGN_IN_FAILED)
    assert len(failed) == 1
    assert (failed[0].subject, failed[0].client_ip) == (EMAIL, "127.0.0.1")
    assert failed[0].details == {"reason": "bad_password", "during": "password_change"}
    assert await audit_rows(browser, PASSWORD_CHANGED) == []
    # Nothing changed: the old password still signs in, and this session still works.
    assert (await signed_in_user(browser.client)) is not None
    assert (await browser.sign_in(EMAIL, OLD_PASSWORD)).status_code == 200


@pytest.mark.parametrize(("new", "reason"), [("short", "too_short"), ("x" * 1025, "too_long")])
async def test_a_refused_new_password_names_the_rule(
    browser: Browser, new: str, reason: str
) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    answer = await browser.client.post("/api/auth/password", json=change(OLD_PASSWORD, new))
    assert answer.status_code == 400
    assert answer.json()["reason"] == reason
    assert (await browser.sign_in(EMAIL, OLD_PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [{"current_password": OLD_PASSWORD}, {"current_password": 1, "new_password": NEW_PASSWORD}, []],
)
async def test_a_malformed_body_is_400(browser: Browser, body: object) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    answer = await browser.client.post("/api/auth/password", json=body)
    assert answer.status_code == 400


async def test_wrong_current_passwords_spend_the_sign_in_limit(settings: Settings) -> None:
    """Over the per-account sign-in limit a change is 429 even with the right password,
    and so is a sign-in: a stolen cookie is no way around the limit."""
    limited = Browser(settings.model_copy(update={"SIGN_IN_ACCOUNT_RATE_LIMIT": "3/minute"}))
    try:
        await limited.sign_up(EMAIL, OLD_PASSWORD)
        for _ in range(3):
            answer = await limited.client.post(
                "/api/auth/password", json=change("not the password at all", NEW_PASSWORD)
            )
            assert answer.status_code == 401
        answer = await limited.client.post(
            "/api/auth/password", json=change(OLD_PASSWORD, NEW_PASSWORD)
        )
        assert answer.status_code == 429
        assert answer.json()["reason"] == "RATE_LIMITED"
        assert int(answer.headers["retry-after"]) > 0
        assert answer.headers["ratelimit-remaining"] == "0"
        assert (await limited.sign_in(EMAIL, OLD_PASSWORD)).status_code == 429
        await wait_for_audit(limited, SIGN_IN_FAILED, 3)
        assert await audit_rows(limited, PASSWORD_CHANGED) == []
    finally:
        await limited.close()
