"""The hardening spec in a real browser: cross-origin posts are refused before any handler.

The attacker's pages come from a second origin (same host, another port), the
hardest case for a CSRF check: same-site to the browser, but a different origin.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.servers import AppServer, StaticSite

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "an operator passphrase"


@pytest.fixture(scope="module")
def app() -> Iterator[AppServer]:
    server = AppServer({"SIGN_IN_RATE_LIMIT": "4/minute"}).start()
    server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def attacker(app: AppServer) -> Iterator[StaticSite]:
    target = app.url + "/sandbox/hardening"
    site = StaticSite(
        {
            "/form": f"""<!doctype html><title>win a prize</title>
<form id="f" method="post" action="{target}"><input name="x" value="1"></form>
<script>document.getElementById("f").submit();</script>""",
            "/fetch": "<!doctype html><title>blank</title><p>nothing to see</p>",
        }
    )
    yield site
    site.close()


def counter(app: AppServer) -> int:
    response = httpx.get(app.url + "/api/sandbox/hardening", timeout=5)
    assert response.status_code == 200
    value: int = response.json()["counter"]
    return value


def test_cross_origin_form_post_is_refused_and_changes_nothing(
    page: Page, app: AppServer, attacker: StaticSite
) -> None:
    before = counter(app)
    with page.expect_response(
        lambda r: r.url == app.url + "/sandbox/hardening" and r.request.method == "POST"
    ) as posted:
        page.goto(attacker.url + "/form")
    response = posted.value
    assert response.status == 403
    assert "(CROSS_SITE)" in response.text()
    assert counter(app) == before


def test_credentialed_fetch_from_another_origin_is_refused(
    page: Page, app: AppServer, attacker: StaticSite
) -> None:
    """The browser hides a cross-origin response from the page, so the proof is server-side:
    the rejection log line (reason and client IP) and the unchanged counter."""
    before = counter(app)
    expect_log = "csrf rejected reason=CROSS_SITE client=127.0.0.1 method=POST"
    logged_before = app.output().count(expect_log)
    page.goto(attacker.url + "/fetch")
    # A "simple" CORS request: the browser sends it without a preflight, so only the
    # server's check stands between it and the handler.
    outcome = page.evaluate(
        """url => fetch(url, {method: "POST", credentials: "include",
                 headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "x=2"})
                 .then(r => "answered " + r.status, e => "blocked: " + e.name)""",
        app.url + "/sandbox/hardening",
    )
    assert outcome == "blocked: TypeError"
    assert counter(app) == before
    assert app.output().count(expect_log) == logged_before + 1


def test_same_origin_form_post_succeeds(page: Page, app: AppServer) -> None:
    before = counter(app)
    page.goto(app.url + "/sandbox/hardening")
    expect(page.locator("#client")).to_have_text("127.0.0.1")
    expect(page.locator("#scheme")).to_have_text("http")
    page.click("#increment")
    expect(page.locator("#counter")).to_have_text(str(before + 1))
    assert counter(app) == before + 1


def test_origin_less_post_is_refused(app: AppServer) -> None:
    before = counter(app)
    response = httpx.post(app.url + "/sandbox/hardening", data={"x": "1"}, timeout=5)
    assert response.status_code == 403
    assert "[NO_ORIGIN]" in response.text
    assert counter(app) == before


def test_health_answers(page: Page, app: AppServer) -> None:
    response = page.goto(app.url + "/api/health")
    assert response is not None
    assert response.status == 200
    assert response.json() == {
        "status": "ok",
        "database": True,
        "schema": "current",
        "jobs": False,
        "cache": False,
        "metrics": False,
    }
    assert response.headers["cache-control"] == "no-store"
    live = page.goto(app.url + "/api/health/live")
    assert live is not None
    assert live.json() == {"status": "ok"}


def test_pages_carry_the_security_headers(page: Page, app: AppServer) -> None:
    response = page.goto(app.url + "/")
    assert response is not None
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "strict-transport-security" not in headers
    # The page works under its own strict CSP: stylesheet and script both load.
    expect(page.locator("header.top")).to_have_css("display", "flex")


def sign_in(page: Page, app: AppServer, email: str, password: str) -> None:
    page.goto(app.url + "/sign-in")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#submit")


def test_failed_sign_in_is_audited_and_the_limit_shows_on_the_page(
    page: Page, app: AppServer
) -> None:
    """Per-IP limit is 4/minute; every attempt counts, successful or not."""
    sign_in(page, app, "victim@example.com", "not the password")
    expect(page.locator("#error")).to_have_text("Wrong email or password.")

    sign_in(page, app, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(page.locator("#account-role")).to_have_text("administrator")
    page.goto(app.url + "/admin/audit?action=auth.sign_in.failed")
    row = page.locator('#audit tbody tr[data-action="auth.sign_in.failed"]').first
    expect(row.locator(".subject")).to_have_text("victim@example.com")
    expect(row.locator(".client-ip")).to_have_text("127.0.0.1")
    expect(row).to_contain_text("unknown_user")

    sign_in(page, app, "victim@example.com", "guess three")
    sign_in(page, app, "victim@example.com", "guess four")
    expect(page.locator("#error")).to_have_text("Wrong email or password.")
    sign_in(page, app, "victim@example.com", "guess five")
    expect(page.locator("#error")).to_contain_text("Too many sign-in attempts. Try again in")


def test_the_audit_page_is_for_admins_only(app: AppServer) -> None:
    response = httpx.get(app.url + "/admin/audit", timeout=5, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=%2Fadmin%2Faudit"
