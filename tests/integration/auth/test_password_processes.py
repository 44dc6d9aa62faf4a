"""A password change and a reset end sessions on every instance: two app processes, one PostgreSQL.

The reset link comes from the console transport's line in the server's
output, as a developer would copy it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.auth.passwords import NEW_PASSWORD, OLD_PASSWORD
from tests.support.servers import AppServer
from tests.support.servers import two_instances as two_app_servers

EMAIL = "ada@example.com"
HEADERS = {"sec-fetch-site": "same-origin"}
THIRD_PASSWORD = "amber comet under silent meadow 19"


@pytest.fixture
def two_instances(postgres_url: str) -> Iterator[tuple[AppServer, AppServer]]:
    env = {
        "DATABASE_URL": postgres_url,
        "SIGN_IN_RATE_LIMIT": "100/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "100/minute",
        "PASSWORD_HASH_PROFILE": "cheapest",
    }
    with two_app_servers(env) as servers:
        yield servers


def post(server: AppServer, path: str, body: object, cookie: str | None = None) -> httpx.Response:
    headers = dict(HEADERS)
    if cookie is not None:
        headers["cookie"] = f"bastion_session={cookie}"
    return httpx.post(server.url + path, json=body, headers=headers, timeout=10)


def sign_in(server: AppServer, password: str) -> str:
    answer = post(server, "/api/auth/sign-in", {"email": EMAIL, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.cookies["bastion_session"]


def user_of(server: AppServer, cookie: str) -> object:
    answer = httpx.get(
        server.url + "/api/auth/session",
        headers={"cookie": f"bastion_session={cookie}"},
        timeout=10,
    )
    if answer.status_code == 401:  # the cookie names a session that has ended
        assert answer.json()["reason"] == "SESSION_ENDED"
        return None
    return answer.json()["user"]


def reset_token(server: AppServer) -> str:
    """The token of the newest reset link in ``server``'s console mail lines."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.findall(r"/reset-password\?token=([A-Za-z0-9_-]+)", server.output())
        if found:
            return str(found[-1])
        time.sleep(0.05)
    raise AssertionError(f"no reset link in the output:\n{server.output()}")


def test_change_and_reset_end_sessions_on_every_instance(
    two_instances: tuple[AppServer, AppServer],
) -> None:
    first, second = two_instances
    created = post(first, "/api/auth/sign-up", {"email": EMAIL, "password": OLD_PASSWORD})
    assert created.status_code == 201
    on_first = created.cookies["bastion_session"]
    on_second = sign_in(second, OLD_PASSWORD)

    # A change on the first instance ends the second's session, there and here.
    changed = post(
        first,
        "/api/auth/password",
        {"current_password": OLD_PASSWORD, "new_password": NEW_PASSWORD},
        on_first,
    )
    assert changed.status_code == 200, changed.text
    rotated = changed.cookies["bastion_session"]
    for server in (first, second):
        assert user_of(server, on_second) is None
        assert user_of(server, on_first) is None  # the old value of the changing session
        assert user_of(server, rotated) is not None

    # A reset asked on the first, confirmed on the second, ends every session on both.
    again_second = sign_in(second, NEW_PASSWORD)
    asked = post(first, "/api/auth/password-reset", {"email": EMAIL})
    assert asked.status_code == 202
    token = reset_token(first)
    assert f"{first.url}/reset-password?token={token}" in first.output()
    done = post(
        second, "/api/auth/password-reset/confirm", {"token": token, "password": THIRD_PASSWORD}
    )
    assert done.status_code == 200, done.text
    for server in (first, second):
        for cookie in (rotated, again_second):
            assert user_of(server, cookie) is None
    # Spent on one instance, spent on both.
    replay = post(
        first, "/api/auth/password-reset/confirm", {"token": token, "password": OLD_PASSWORD}
    )
    assert replay.status_code == 400
    assert replay.json()["reason"] == "used"
    sign_in(first, THIRD_PASSWORD)
