"""In Chromium with a virtual authenticator: add a passkey, sign in with it, then remove it.

The authenticator is the DevTools protocol's (``WebAuthn.enable``,
``WebAuthn.addVirtualAuthenticator``: CTAP2, internal, resident keys, user
verification), reached through Playwright's CDP session, so every byte the
server verifies comes from Chromium's own WebAuthn stack and the example's
static/passkeys.js. WebAuthn takes no IP address as the relying party id, so
the app is ``http://localhost:<port>`` (a secure context, as https is).

One app per database, one page (the authenticator lives in its tab) for the
whole story: register on /account, sign out, sign in without a password,
sign in with the password and the passkey as the second step, remove it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, CDPSession, Page, expect

from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.servers import AppServer, free_port

EMAIL = "ada.passkeys@example.com"
PASSWORD = "correct horse battery staple 42"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest) -> Iterator[AppServer]:
    port = free_port()
    env = {
        "APP_URL": f"http://localhost:{port}",
        "SIGN_IN_RATE_LIMIT": "100/minute",
        "SIGN_UP_RATE_LIMIT": "100/minute",
        "PASSWORD_HASH_PROFILE": "cheapest",
    }
    database: str | None = None
    postgres: PostgresServer | None = None
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres_server")
        if not postgres.running:
            postgres.start()
        database = unique_database_name("passkeys_e2e")
        env["DATABASE_URL"] = postgres.create_database(database)
    server = AppServer(env, port=port)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if postgres is not None and database is not None:
            postgres.drop_database(database)


def site(app: AppServer) -> str:
    return f"http://localhost:{app.port}"


@pytest.fixture
def tab(browser: Browser) -> Iterator[tuple[Page, CDPSession, str]]:
    """A page with a virtual platform authenticator; the CDP session and the authenticator id."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    yield page, cdp, added["authenticatorId"]
    context.close()


def sign_out(page: Page, url: str) -> None:
    page.goto(url + "/account")
    page.click("#sign-out")
    expect(page).to_have_url(url + "/")


def test_a_passkey_signs_in_with_and_without_the_password(
    tab: tuple[Page, CDPSession, str], app: AppServer
) -> None:
    page, cdp, authenticator = tab
    url = site(app)
    page.goto(url + "/sign-up")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(url + "/account")
    expect(page.locator("#no-passkeys")).to_be_visible()

    # Add one: the password again, then the authenticator's dialog (answered by itself).
    page.fill("#passkey-password", PASSWORD)
    page.fill("#passkey-name", "Test laptop")
    page.click("#passkey-add-submit")
    expect(page).to_have_url(url + "/account?passkey=added")
    rows = page.locator("#passkeys tr.passkey")
    expect(rows).to_have_count(1)
    expect(rows.locator(".passkey-name")).to_have_text("Test laptop")
    expect(rows.locator(".passkey-used")).to_have_text("never")
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(stored) == 1
    assert stored[0]["isResidentCredential"] is True
    assert stored[0]["rpId"] == "localhost"

    # Without a password: the discoverable credential names the account.
    sign_out(page, url)
    page.goto(url + "/sign-in")
    page.click("#passkey-sign-in")
    expect(page).to_have_url(url + "/account")
    expect(page.locator("#account-email")).to_have_text(EMAIL)
    expect(rows.locator(".passkey-used")).not_to_have_text("never")

    # With the password: it is right, and the passkey is the second step.
    sign_out(page, url)
    page.goto(url + "/sign-in")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page.locator("#second-factor")).to_have_attribute("data-methods", "passkey")
    # The pending cookie alone authorises nothing.
    assert page.request.get(url + "/api/auth/session").json() == {"user": None}
    page.goto(url + "/account")
    expect(page).to_have_url(url + "/sign-in?next=%2Faccount")
    page.click("#passkey-sign-in")
    expect(page).to_have_url(url + "/account")
    expect(page.locator("#account-email")).to_have_text(EMAIL)
    counter = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert counter["credentials"][0]["signCount"] >= 2

    # Remove it: the authenticator still holds it, and the site no longer takes it.
    page.click("#passkeys .remove-passkey")
    expect(page).to_have_url(url + "/account?passkey=removed")
    expect(page.locator("#no-passkeys")).to_be_visible()
    sign_out(page, url)
    page.goto(url + "/sign-in")
    page.click("#passkey-sign-in")
    expect(page.locator("#passkey-error")).to_have_attribute("data-reason", "credential")
    expect(page).to_have_url(url + "/sign-in")
