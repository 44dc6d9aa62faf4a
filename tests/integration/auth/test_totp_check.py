"""``bastion check --deploy`` warns (W080) while an administrator signs in with a password alone."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from bastion.config import Settings
from tests.integration.auth.conftest import Browser
from tests.integration.auth.totp import PASSWORD, code, steady_step

ADMIN = "admin.check@example.com"


def check_deploy(url: str) -> list[dict[str, str]]:
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "check", "--deploy", "--json"],
        env={"PATH": "", "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings: list[dict[str, str]] = json.loads(result.stdout)
    return [finding for finding in findings if finding["id"] == "bastion.W080"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_w080_until_the_administrator_turns_totp_on(
    settings: Settings, browser: Browser
) -> None:
    url = settings.DATABASE_URL
    assert await asyncio.to_thread(check_deploy, url) == []  # no administrator at all
    await browser.auth.create_user(ADMIN, PASSWORD, is_admin=True)
    await browser.auth.create_user("member.check@example.com", PASSWORD)
    (found,) = await asyncio.to_thread(check_deploy, url)
    assert found["level"] == "warning"
    assert found["message"].endswith(f"without a second factor: {ADMIN}")

    assert (await browser.sign_in(ADMIN, PASSWORD)).status_code == 200
    enrolled = await browser.client.post("/api/auth/totp/enroll", json={"password": PASSWORD})
    # Enrolled is not on yet: the warning stays until a code confirms it.
    assert len(await asyncio.to_thread(check_deploy, url)) == 1
    confirmed = await browser.client.post(
        "/api/auth/totp/confirm",
        json={"code": code(enrolled.json()["secret"], await steady_step())},
    )
    assert confirmed.status_code == 200
    assert await asyncio.to_thread(check_deploy, url) == []
