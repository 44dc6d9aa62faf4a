"""The sign-in limit in one process: 429 with Retry-After and RateLimit headers, audited."""

from __future__ import annotations

from bastion.audit import recent
from bastion.config import Settings
from tests.integration.auth.conftest import Browser


async def test_per_ip_limit_gives_429_with_headers_and_audit(settings: Settings) -> None:
    browser = Browser(settings.model_copy(update={"SIGN_IN_RATE_LIMIT": "3/minute"}))
    try:
        statuses = []
        for index in range(5):
            response = await browser.sign_in(f"user{index}@example.com", "wrong password")
            statuses.append(response.status_code)
        assert statuses == [401, 401, 401, 429, 429]
        wait = response.headers["retry-after"]
        assert response.json() == {
            "error": "Too Many Requests",
            "reason": "RATE_LIMITED",
            "hint": f"wait {wait} seconds, then try again",
        }
        assert 1 <= int(wait) <= 60
        assert response.headers["ratelimit-limit"] == "3"
        assert response.headers["ratelimit-remaining"] == "0"
        async with browser.database.session() as db:
            failed = await recent(db, action="auth.sign_in.failed")
            assert await recent(db, action="auth.sign_in.blocked") == []  # not per attempt
        # The three that reached the password check have a row each; the refusals none.
        assert [row.details["reason"] for row in failed] == ["unknown_user"] * 3
        assert await browser.auth.guard.blocked.flush() == 2
        async with browser.database.session() as db:
            blocked = await recent(db, action="auth.sign_in.blocked")
            tripped = await recent(db, action="auth.sign_in.rate_limited")
        # One row per client and account: two accounts were tried while blocked.
        assert sorted(row.subject or "" for row in blocked) == [
            "user3@example.com",
            "user4@example.com",
        ]
        for row in blocked:
            assert row.outcome == "blocked"
            assert row.client_ip == "127.0.0.1"
            assert row.details["count"] == 1
            assert row.details["client_key"] == "127.0.0.1"
            assert row.details["scope"] == "ip"
            assert row.details["first_at"] <= row.details["last_at"]
        assert len(tripped) == 1
        assert tripped[0].client_ip == "127.0.0.1"
    finally:
        await browser.close()


async def test_per_account_limit_holds_across_ips(settings: Settings) -> None:
    browser = Browser(settings.model_copy(update={"SIGN_IN_ACCOUNT_RATE_LIMIT": "2/minute"}))
    try:
        statuses = []
        for index in range(3):
            response = await browser.client.post(
                "/api/auth/sign-in",
                json={"email": "target@example.com", "password": "guess number x"},
                headers={"x-forwarded-for": f"198.51.100.{index + 1}"},
            )
            statuses.append(response.status_code)
        assert statuses == [401, 401, 429]
    finally:
        await browser.close()


async def test_the_page_shows_the_rate_limit_message(settings: Settings) -> None:
    browser = Browser(settings.model_copy(update={"SIGN_IN_RATE_LIMIT": "1/minute"}))
    try:
        form = {"email": "a@example.com", "password": "wrong password"}
        first = await browser.client.post("/sign-in", data=form)
        assert first.status_code == 401
        assert "Wrong email or password." in first.text
        second = await browser.client.post("/sign-in", data=form)
        assert second.status_code == 429
        assert "Too many sign-in attempts. Try again in" in second.text
        assert "retry-after" in second.headers
    finally:
        await browser.close()


async def test_sign_up_has_its_own_limit_and_never_answers_201_without_a_session(
    settings: Settings,
) -> None:
    browser = Browser(
        settings.model_copy(
            update={"SIGN_UP_RATE_LIMIT": "2/hour", "SIGN_IN_RATE_LIMIT": "1/minute"}
        )
    )
    try:
        created = [
            await browser.sign_up(f"new{i}@example.com", "a long enough password") for i in range(3)
        ]
        assert [r.status_code for r in created] == [201, 201, 429]
        assert all("bastion_session" in r.headers.get("set-cookie", "") for r in created[:2])
        refused = created[2]
        assert refused.json() == {
            "error": "Too Many Requests",
            "reason": "RATE_LIMITED",
            "hint": f"wait {refused.headers['retry-after']} seconds, then try again",
        }
        as_text = await browser.client.post(
            "/api/auth/sign-up",
            content=b"email=new3%40example.com&password=a+long+enough+password",
            headers={"content-type": "application/x-www-form-urlencoded", "accept": "text/plain"},
        )
        assert as_text.status_code == 429
        assert as_text.text.splitlines()[0] == (
            "Too Many Requests: too many sign-ups from this address; try again later [RATE_LIMITED]"
        )
        assert refused.headers["ratelimit-limit"] == "2"
        assert "set-cookie" not in refused.headers
        async with browser.database.session() as db:
            assert await browser.auth.find_user(db, "new2@example.com") is None  # not made
        # Two sign-ups spent none of the sign-in budget (1/minute): one attempt is left.
        first = await browser.sign_in("new0@example.com", "a long enough password")
        assert first.status_code == 200
    finally:
        await browser.close()
