"""A way back: pages for signed-in users send visitors to /sign-in?next=, and only home.

On SQLite and PostgreSQL, through the example app's own pages (HTML forms, as
a browser posts them). The values an attacker would put in ``next`` come from
the unit tests' list, so both layers are held to the same cases.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from bastion.auth._sessions import COOKIE_NAME
from tests.integration.auth.conftest import Browser
from tests.unit.test_redirects import REFUSED

PASSWORD = "correct horse battery"
HOSTILE = [value for value in REFUSED if value]


def _next_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/sign-in"
    [target] = parse_qs(parts.query)["next"]
    return target


@pytest.mark.parametrize("page", ["/account", "/admin/audit?page=2&action=auth.sign_up"])
async def test_an_anonymous_visitor_is_sent_to_sign_in_with_the_way_back(
    browser: Browser, page: str
) -> None:
    turned_away = await browser.client.get(page)
    assert turned_away.status_code == 303
    assert _next_of(turned_away.headers["location"]) == page

    sign_in = await browser.client.get(turned_away.headers["location"])
    assert sign_in.status_code == 200
    # The page says why the visitor is there, and the form keeps the way back.
    assert 'id="why"' in sign_in.text
    assert page.replace("&", "&amp;") in sign_in.text
    assert 'action="/sign-in?next=' in sign_in.text
    assert 'href="/sign-up?next=' in sign_in.text


async def test_signing_up_and_in_goes_back_to_the_page(browser: Browser) -> None:
    target = "/admin/audit?page=2"
    query = {"next": target}
    created = await browser.client.post(
        "/sign-up", params=query, data={"email": "ada@example.com", "password": PASSWORD}
    )
    assert created.status_code == 303
    assert created.headers["location"] == target
    await browser.client.post("/sign-out")

    signed_in = await browser.client.post(
        "/sign-in", params=query, data={"email": "ada@example.com", "password": PASSWORD}
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == target
    assert COOKIE_NAME in signed_in.cookies


async def test_a_hostile_next_is_never_followed(browser: Browser) -> None:
    await browser.client.post("/sign-up", data={"email": "ada@example.com", "password": PASSWORD})
    await browser.client.post("/sign-out")
    landings = []
    for value in HOSTILE:
        page = await browser.client.get("/sign-in", params={"next": value})
        assert page.status_code == 200, value
        assert 'id="why"' not in page.text, value
        assert 'action="/sign-in"' in page.text, value
        signed_in = await browser.client.post(
            "/sign-in",
            params={"next": value},
            data={"email": "ada@example.com", "password": PASSWORD},
        )
        assert signed_in.status_code == 303, value
        landings.append(signed_in.headers["location"])
        await browser.client.post("/sign-out")
    assert set(landings) == {"/account"}


async def test_the_nav_offers_sign_in_and_sign_up_until_the_visitor_is_in(
    browser: Browser,
) -> None:
    anonymous = (await browser.client.get("/")).text
    assert 'href="/sign-in"' in anonymous
    assert 'href="/sign-up"' in anonymous
    assert 'href="/account"' not in anonymous

    await browser.client.post("/sign-up", data={"email": "ada@example.com", "password": PASSWORD})
    signed_in = (await browser.client.get("/")).text
    assert 'href="/account"' in signed_in
    assert 'id="nav-sign-in"' not in signed_in


async def test_a_cookie_that_outlived_its_session_is_cleared_on_the_way(
    browser: Browser,
) -> None:
    browser.client.cookies.set(COOKIE_NAME, "no-such-session")
    assert 'href="/account"' in (await browser.client.get("/")).text  # a cookie, so "Account"
    turned_away = await browser.client.get("/account")
    assert turned_away.status_code == 303
    assert _next_of(turned_away.headers["location"]) == "/account"
    cleared = turned_away.headers["set-cookie"].lower()
    assert cleared.startswith(f'{COOKIE_NAME}="";')
    assert "max-age=0" in cleared
