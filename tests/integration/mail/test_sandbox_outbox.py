"""The example's /sandbox/accounts outbox: what the console transport wrote, newest first.

The example app in-process (development, no ``EMAIL_URL``, inline jobs): a
message queued through its ``Bastion.later`` is written by the console
transport and shown by the page and ``GET /api/sandbox/accounts/outbox``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bastion import Bastion
from bastion.config import load_settings
from bastion.mail import MAIL_TASK, Message, outbox
from bastion_example.app import create_routes_app

PRODUCTION_KEY = "k7Qm2vX9pL4sT8wB1nR6yH3jF5dG0aZc-E_uIoKxVbNqMtWlYs"


async def _client(**values: object) -> tuple[Bastion, httpx.AsyncClient]:
    settings = load_settings(APP_URL="http://testserver", ALLOWED_HOSTS="testserver", **values)
    routes = create_routes_app(settings)
    bastion: Bastion = routes.state.bastion
    app = bastion.protect(routes, operations=False)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
        base_url="http://testserver",
    )
    return bastion, client


@pytest.fixture
async def development(tmp_path: Path) -> AsyncIterator[tuple[Bastion, httpx.AsyncClient]]:
    bastion, client = await _client(DATABASE_URL=f"sqlite:///{tmp_path / 'o.db'}")
    yield bastion, client
    await client.aclose()
    await bastion.database.dispose()


async def _queue(bastion: Bastion, message: Message) -> None:
    """Queue as the accounts do, and wait for the inline job to write it."""
    await bastion.later(MAIL_TASK, **message.arguments())
    for _ in range(250):
        if outbox() and outbox()[0] == message:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not in the outbox: {message.subject}")


async def test_the_outbox_shows_the_console_messages_newest_first(
    development: tuple[Bastion, httpx.AsyncClient],
) -> None:
    bastion, client = development
    first = Message("ada@example.com", "Reset your password", "Open http://testserver/r?t=abc1")
    second = Message("grace@example.com", "Your password was changed", "At 10:42 <b>UTC</b>.")
    await _queue(bastion, first)
    await _queue(bastion, second)

    response = await client.get("/api/sandbox/accounts/outbox")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"  # it holds reset links
    body = response.json()
    assert body["transport"] == "console"
    shown = [(m["to"], m["subject"], m["text"]) for m in body["messages"][:2]]
    assert shown == [
        (second.to, second.subject, second.text),
        (first.to, first.subject, first.text),
    ]
    assert body["messages"][0]["written_at"] >= body["messages"][1]["written_at"]

    page = await client.get("/sandbox/accounts")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    html = page.text
    assert 'data-transport="console"' in html
    assert html.index(second.subject) < html.index(first.subject)  # newest first
    assert "http://testserver/r?t=abc1" in html
    assert "At 10:42 &lt;b&gt;UTC&lt;/b&gt;." in html  # the text is escaped, not markup


async def test_the_index_links_the_accounts_sandbox(
    development: tuple[Bastion, httpx.AsyncClient],
) -> None:
    _, client = development
    html = (await client.get("/")).text
    assert 'href="/sandbox/accounts"' in html


async def test_production_hides_the_outbox(tmp_path: Path) -> None:
    bastion, client = await _client(
        DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}",
        APP_ENV="production",
        SECRET_KEY=PRODUCTION_KEY,
    )
    try:
        for path in ("/sandbox/accounts", "/api/sandbox/accounts/outbox"):
            assert (await client.get(path)).status_code == 404, path
    finally:
        await client.aclose()
        await bastion.database.dispose()
