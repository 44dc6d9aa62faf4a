"""In a real browser: turn TOTP on from /account, then sign in with the password and a code.

The test reads the secret from the page, as a person types it into an
authenticator app, and computes the codes from it with pyotp.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.integration.auth.totp import BACKUP_CODE, PASSWORD, steady_step_sync
from tests.support.servers import AppServer

EMAIL = "ada.totp.browser@example.com"


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    # A password proof, a password and a code each count against the sign-in limits.
    server = AppServer(
        {
            "SIGN_IN_RATE_LIMIT": "100/minute",
            "SIGN_IN_ACCOUNT_RATE_LIMIT": "100/minute",
            "SIGN_UP_RATE_LIMIT": "100/minute",
        }
    ).start()
    yield server
    server.stop()


def sign_in_with_password(page: Page, app: AppServer) -> None:
    page.goto(app.url + "/sign-in?next=%2Faccount")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(app.url + "/sign-in/second-factor?next=%2Faccount")


def test_enrol_on_the_account_page_then_sign_in_with_a_code(page: Page, app: AppServer) -> None:
    refused: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", watch)
    page.goto(app.url + "/sign-up")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(app.url + "/account")
    expect(page.locator("#totp-status")).to_have_attribute("data-state", "off")

    page.fill("#totp-enroll-password", PASSWORD)
    page.click("#totp-enroll")
    expect(page.locator("#totp-qr svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text()
    page.set_viewport_size({"width": 320, "height": 640})  # the QR code and key fit a small phone
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.set_viewport_size({"width": 1280, "height": 720})
    totp = pyotp.TOTP(secret)
    step = steady_step_sync(10)
    page.fill("#totp-code", totp.generate_otp(step - 1))
    page.click("#totp-confirm")
    codes = page.locator("#backup-codes .backup-code")
    expect(codes).to_have_count(10)
    backup_codes = codes.all_inner_texts()
    assert all(BACKUP_CODE.match(one) for one in backup_codes)
    expect(page.locator("#totp-status")).to_have_attribute("data-state", "on")
    page.reload()  # shown once: not on the next page
    expect(page.locator("#backup-codes")).to_have_count(0)
    expect(page.locator("#totp-secret")).to_have_count(0)
    expect(page.locator("#totp-status")).to_contain_text("10 unused backup codes")

    page.click("#sign-out")
    sign_in_with_password(page, app)
    # The password alone is not a session.
    page.goto(app.url + "/account")
    expect(page).to_have_url(app.url + "/sign-in?next=%2Faccount")
    sign_in_with_password(page, app)
    page.fill("#code", "000000" if totp.generate_otp(step) != "000000" else "111111")
    page.click("#submit-code")
    expect(page.locator("#error")).to_contain_text("wrong")
    page.fill("#code", totp.generate_otp(step))
    page.click("#submit-code")
    expect(page).to_have_url(app.url + "/account")
    expect(page.locator("#account-email")).to_have_text(EMAIL)

    # A backup code, typed in capitals and without its dash, on the second step.
    page.click("#sign-out")
    sign_in_with_password(page, app)
    page.fill("#backup-code", backup_codes[0].replace("-", "").upper())
    page.click("#submit-backup-code")
    expect(page).to_have_url(app.url + "/account")
    expect(page.locator("#totp-status")).to_contain_text("9 unused backup codes")

    # Turned off, the password alone signs in again.
    page.fill("#totp-disable-password", PASSWORD)
    page.click("#totp-disable")
    expect(page.locator("#totp-off")).to_be_visible()
    expect(page.locator("#totp-status")).to_have_attribute("data-state", "off")
    page.click("#sign-out")
    page.goto(app.url + "/sign-in")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    expect(page).to_have_url(app.url + "/account")
    assert refused == []
