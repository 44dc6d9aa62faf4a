"""In a real browser: a page for signed-in users says why it sent you away, and brings you back.

The anonymous visitor of /admin/audit lands on the sign-in page with a note
naming the page, the nav offers "Sign in" and "Sign up", and signing in
(as an administrator) lands on /admin/audit itself, following the 303s as a
browser does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.support.servers import AppServer

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "an operator passphrase"


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer({"SIGN_IN_RATE_LIMIT": "100/minute"}).start()
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    yield server
    server.stop()


def test_sign_in_says_why_and_goes_back_to_the_page(page: Page, app: AppServer) -> None:
    page.goto(app.url + "/admin/audit?page=1")
    assert page.url == app.url + "/sign-in?next=%2Fadmin%2Faudit%3Fpage%3D1"
    expect(page.locator("#why")).to_contain_text("/admin/audit?page=1")
    expect(page.locator("#nav-sign-in")).to_be_visible()
    expect(page.locator("#nav-sign-up")).to_be_visible()
    expect(page.locator("header.top nav a[href='/account']")).to_have_count(0)

    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(app.url + "/admin/audit?page=1")
    expect(page.locator("h1")).to_contain_text("Audit")
    expect(page.locator("header.top nav a[href='/account']")).to_be_visible()
    expect(page.locator("#nav-sign-in")).to_have_count(0)


def test_sign_up_from_the_sign_in_page_keeps_the_way_back(page: Page, app: AppServer) -> None:
    page.goto(app.url + "/account")
    page.click("#to-sign-up")
    assert page.url == app.url + "/sign-up?next=%2Faccount"
    page.fill("#email", "newcomer@example.com")
    page.fill("#password", "a long enough password")
    page.click("#submit")
    expect(page).to_have_url(app.url + "/account")
    expect(page.locator("main")).to_contain_text("newcomer@example.com")


def test_a_next_to_another_site_lands_on_the_account_page(page: Page, app: AppServer) -> None:
    page.goto(app.url + "/sign-in?next=%2F%5Cevil.example")
    expect(page.locator("#why")).to_have_count(0)
    page.fill("#email", ADMIN_EMAIL)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(app.url + "/account")
