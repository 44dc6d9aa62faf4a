"""What the TOTP tests share: codes computed from the secret, and an account with TOTP on.

A code is named by its time step, computed once here and passed around, so a
test never reads the clock twice and straddles a step boundary by accident.
The server accepts one step either side of its own; :func:`steady_step`
waits out the last seconds of a step, so that "the step before now" is still
within the window when the server checks it.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import pyotp

PASSWORD = "correct horse battery staple 42"
PERIOD = 30
BACKUP_CODE = re.compile(r"^[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}$")


def code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def _wait_needed(margin: float) -> float:
    left = PERIOD - time.time() % PERIOD
    return left + 0.05 if left < margin else 0.0


async def steady_step(margin: float = 4.0) -> int:
    """The current step, once at least ``margin`` seconds of it remain."""
    await asyncio.sleep(_wait_needed(margin))
    return int(time.time()) // PERIOD


def steady_step_sync(margin: float = 4.0) -> int:
    time.sleep(_wait_needed(margin))
    return int(time.time()) // PERIOD


async def enable_totp(
    client: httpx.AsyncClient, email: str, *, password: str = PASSWORD, margin: float = 4.0
) -> tuple[str, list[str], int]:
    """Sign up ``email`` on ``client``, turn TOTP on; (secret, backup codes, step now).

    The confirmation uses the step before now: the steps now and after it are
    left for the test to sign in with, within ``margin`` seconds (the step
    before now stays in the server's window that long).
    """
    signed_up = await client.post("/api/auth/sign-up", json={"email": email, "password": password})
    assert signed_up.status_code == 201, signed_up.text
    enrolled = await client.post("/api/auth/totp/enroll", json={"password": password})
    assert enrolled.status_code == 200, enrolled.text
    secret = enrolled.json()["secret"]
    step = await steady_step(margin)
    confirmed = await client.post("/api/auth/totp/confirm", json={"code": code(secret, step - 1)})
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["backup_codes"], step


async def password_step(
    client: httpx.AsyncClient, email: str, *, password: str = PASSWORD
) -> httpx.Response:
    """The first step of a sign-in on an account with a second factor: the pending cookie."""
    answer = await client.post("/api/auth/sign-in", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"second_factor": "required", "methods": ["totp"]}
    return answer


async def second_step(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/api/auth/sign-in/second-factor", json=body)
