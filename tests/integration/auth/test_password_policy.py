"""The password policy at the endpoints: a 400 naming the rule, no account made, old passwords kept.

In process (ASGI) on SQLite: the policy decides before the database is
touched, so PostgreSQL would prove nothing more here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bastion.auth._passwords import MAX_PASSWORD, Passwords
from bastion.config import Settings, load_settings
from bastion.db import User, migrate
from tests.integration.auth.conftest import Browser

PASSPHRASE = "a correct horse grazes by the battery staple"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    url = f"sqlite:///{tmp_path / 'bastion.db'}"
    asyncio.run(migrate(url))
    return load_settings(
        DATABASE_URL=url,
        APP_URL="http://testserver",
        ALLOWED_HOSTS="testserver",
        SIGN_UP_RATE_LIMIT="1000/minute",
        PASSWORD_HASH_PROFILE="cheapest",
    )


@pytest.fixture
async def browser(settings: Settings) -> AsyncIterator[Browser]:
    instance = Browser(settings)
    yield instance
    await instance.close()


async def users(browser: Browser) -> int:
    async with browser.database.session() as db:
        return await db.scalar(select(func.count()).select_from(User)) or 0


@pytest.mark.parametrize(
    ("password", "reason", "error"),
    [
        ("fourteen chars", "too_short", "password must be at least 15 characters"),
        ("y" * (MAX_PASSWORD + 1), "too_long", "password must be at most 1024 characters"),
        ("1234567890QWERTY", "common", "this password is one of the most common ones"),
        (
            "grace hopper wrote the compiler",
            "contains_context",
            "password must not contain your email",
        ),
        (
            "a fortified bastion of passwords",
            "contains_context",
            "password must not contain your email",
        ),
    ],
)
async def test_sign_up_refuses_with_the_rule_named(
    browser: Browser, password: str, reason: str, error: str
) -> None:
    response = await browser.sign_up("grace.hopper@navy.example", password)
    assert response.status_code == 400
    body = response.json()
    assert body["reason"] == reason
    assert body["error"].startswith(error)
    assert set(body) == {"error", "reason"}
    assert "bastion_session" not in response.headers.get("set-cookie", "")
    assert await users(browser) == 0


async def test_the_form_says_the_rule_before_and_the_refusal_after(browser: Browser) -> None:
    page = (await browser.client.get("/sign-up")).text
    assert 'minlength="15"' in page
    assert "At least 15 characters" in page
    assert "most common passwords" in page
    assert "your email address or the site's name" in page
    assert "(bastion)" in page
    refused = await browser.client.post(
        "/sign-up", data={"email": "ada@example.com", "password": "1234567890qwerty"}
    )
    assert refused.status_code == 400
    assert "one of the most common ones" in refused.text
    assert await users(browser) == 0


async def test_a_password_set_before_the_policy_still_signs_in(browser: Browser) -> None:
    """Sign-in never applies the policy: a 10-character password from the old rule still works."""
    old = "password12"
    async with browser.database.session() as db:
        db.add(User(email="early@example.com", password_hash=await Passwords().hash(old)))
        await db.commit()
    assert (await browser.sign_up("late@example.com", old)).json()["reason"] == "too_short"
    signed_in = await browser.sign_in("early@example.com", old)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["user"]["email"] == "early@example.com"


async def test_a_passphrase_signs_up(browser: Browser) -> None:
    assert (await browser.sign_up("Ada@Example.com", PASSPHRASE)).status_code == 201
    assert await users(browser) == 1


@pytest.mark.parametrize(
    ("body", "verdict"),
    [
        ({"password": PASSPHRASE, "email": "ada@example.com"}, {"ok": True, "reason": None}),
        ({"password": "ManchesterUnited"}, {"ok": False, "reason": "common"}),
        ({"password": "short", "email": ""}, {"ok": False, "reason": "too_short"}),
        (
            {"password": "lovelace wrote the first program", "email": "ada.lovelace@example.com"},
            {"ok": False, "reason": "contains_context"},
        ),
    ],
)
async def test_the_sandbox_gives_the_same_verdict(
    browser: Browser, body: dict[str, str], verdict: dict[str, object]
) -> None:
    response = await browser.client.post("/api/sandbox/accounts/password-verdict", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert {k: answer[k] for k in ("ok", "reason")} == verdict
    assert ("error" in answer) is not verdict["ok"]
    assert await users(browser) == 0


async def test_the_sandbox_page_checks_without_javascript(browser: Browser) -> None:
    page = await browser.client.get("/sandbox/accounts")
    assert page.status_code == 200
    assert 'id="verdict-form"' in page.text
    assert "accounts.js" in page.text
    checked = await browser.client.post(
        "/sandbox/accounts", data={"email": "a@example.com", "password": "1234567890qwerty"}
    )
    assert checked.status_code == 200
    assert 'data-reason="common"' in checked.text
    assert "1234567890qwerty" not in checked.text  # the password is not echoed
    bad = await browser.client.post("/api/sandbox/accounts/password-verdict", json=["x"])
    assert bad.status_code == 400


async def test_a_refused_password_spends_none_of_the_sign_up_budget(settings: Settings) -> None:
    """A 400 changes nothing: trying weak passwords does not lock the next, good one out."""
    limited = Browser(settings.model_copy(update={"SIGN_UP_RATE_LIMIT": "1/hour"}))
    try:
        for weak in ("too short", "1234567890qwerty", "y" * (MAX_PASSWORD + 1)):
            assert (await limited.sign_up("ada@example.com", weak)).status_code == 400
        assert (await limited.sign_up("ada@example.com", PASSPHRASE)).status_code == 201
        assert (await limited.sign_up("bob@example.com", PASSPHRASE)).status_code == 429
    finally:
        await limited.close()
