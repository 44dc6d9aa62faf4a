"""The example app's refusals: a styled page for a browser, JSON for a script, a hint for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx

from bastion.config import load_settings
from bastion_example.app import create_app


async def test_browsers_get_the_styled_page_and_scripts_get_json(tmp_path: Path) -> None:
    app = create_app(load_settings(DATABASE_URL=f"sqlite:///{tmp_path}/x.db"))
    transport = httpx.ASGITransport(app=cast(Any, app))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:8000") as client:
        page = await client.post("/sign-in", headers={"accept": "text/html"})
        script = await client.post("/api/auth/sign-in", json={"email": "a@b.c", "password": "x"})
        host = await client.get("/", headers={"host": "evil.example", "accept": "text/html"})
    assert page.status_code == 403
    assert '<link rel="stylesheet" href="/static/app.css">' in page.text
    assert "NO_ORIGIN" in page.text
    assert "send Origin: http://localhost:8000" in page.text
    assert script.status_code == 403
    assert script.json()["reason"] == "NO_ORIGIN"
    assert script.json()["hint"].startswith("send Origin: http://localhost:8000")
    assert host.status_code == 400
    assert "HOST_NOT_ALLOWED" in host.text
    assert "evil.example" not in host.text  # nothing the client sent is echoed
