"""The example's password pages, as plain HTML forms, in process (SQLite and PostgreSQL)."""

from __future__ import annotations

from bastion.auth._sessions import COOKIE_NAME
from bastion.mail import outbox
from tests.integration.auth.conftest import Browser
from tests.integration.auth.passwords import (
    NEW_PASSWORD,
    OLD_PASSWORD,
    next_message,
    request_reset,
)

EMAIL = "ada@example.com"


async def test_sign_in_links_to_forgot_password(browser: Browser) -> None:
    page = await browser.client.get("/sign-in")
    assert 'href="/forgot-password"' in page.text


async def test_forgot_password_says_the_same_for_any_address(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    seen = outbox()
    known = await browser.client.post("/forgot-password", data={"email": EMAIL})
    unknown = await browser.client.post("/forgot-password", data={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert 'id="sent"' in known.text
    assert known.text.replace(EMAIL, "") == unknown.text.replace("nobody@example.com", "")
    await next_message(EMAIL, "Reset your password", seen)
    bad = await browser.client.post("/forgot-password", data={"email": "not an email"})
    assert bad.status_code == 400
    assert 'id="error"' in bad.text


async def test_reset_page_keeps_the_token_to_itself(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    token = await request_reset(browser, EMAIL)
    page = await browser.client.get("/reset-password", params={"token": token})
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert f'<input type="hidden" name="token" value="{token}">' in page.text

    done = await browser.client.post(
        "/reset-password", data={"token": token, "password": NEW_PASSWORD}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/sign-in?reset=done"
    assert 'id="reset-done"' in (await browser.client.get("/sign-in?reset=done")).text
    assert (await browser.sign_in(EMAIL, NEW_PASSWORD)).status_code == 200

    # The spent link says so at once, on the same private terms.
    spent = await browser.client.get("/reset-password", params={"token": token})
    assert spent.status_code == 400
    assert spent.headers["referrer-policy"] == "no-referrer"
    assert "already used" in spent.text
    assert token not in spent.text


async def test_reset_page_refuses_a_short_password_and_keeps_the_link(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    token = await request_reset(browser, EMAIL)
    short = await browser.client.post("/reset-password", data={"token": token, "password": "short"})
    assert short.status_code == 400
    assert 'id="error"' in short.text
    assert f'value="{token}"' in short.text
    garbage = await browser.client.post(
        "/reset-password", data={"token": "garbage", "password": NEW_PASSWORD}
    )
    assert garbage.status_code == 400
    assert "not valid" in garbage.text


async def test_the_account_page_changes_the_password(browser: Browser) -> None:
    await browser.sign_up(EMAIL, OLD_PASSWORD)
    old_cookie = browser.client.cookies[COOKIE_NAME]
    account = await browser.client.get("/account")
    assert 'action="/account/password"' in account.text

    wrong = await browser.client.post(
        "/account/password",
        data={"current_password": "not the password at all", "new_password": NEW_PASSWORD},
    )
    assert wrong.status_code == 401
    assert "current password is wrong" in wrong.text
    assert 'id="account-email"' in wrong.text  # the account page itself, with the error

    done = await browser.client.post(
        "/account/password",
        data={"current_password": OLD_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/account?password=changed"
    assert browser.client.cookies[COOKIE_NAME] != old_cookie
    shown = await browser.client.get("/account?password=changed")
    assert 'id="password-changed"' in shown.text


async def test_the_change_form_sends_an_anonymous_visitor_to_sign_in(browser: Browser) -> None:
    answer = await browser.client.post(
        "/account/password",
        data={"current_password": OLD_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/sign-in?next=%2Faccount"


async def test_a_bad_form_from_an_anonymous_visitor_is_still_sent_to_sign_in(
    browser: Browser,
) -> None:
    """A body the form never sends (a missing field) from someone not signed in: the way to
    the sign-in page, not a redirect carrying the 400 of the body."""
    answer = await browser.client.post("/account/password", data={"current_password": "x"})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/sign-in?next=")
