"""A TOTP time step or a backup code is used once across instances (two processes, one
PostgreSQL): the step is claimed, and the code spent, by one conditional UPDATE each.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.auth.totp import PASSWORD, code, steady_step_sync
from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.servers import AppServer, two_instances

ORIGIN = {"sec-fetch-site": "same-origin"}


@pytest.fixture(scope="module")
def instances(postgres_server: PostgresServer) -> Iterator[tuple[AppServer, AppServer]]:
    name = unique_database_name("totp_instances")
    url = postgres_server.create_database(name)
    env = {
        "DATABASE_URL": url,
        "SIGN_IN_RATE_LIMIT": "1000/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "1000/minute",
        "SIGN_UP_RATE_LIMIT": "1000/minute",
        "PASSWORD_HASH_PROFILE": "cheapest",
    }
    try:
        with two_instances(env) as servers:
            yield servers
    finally:
        postgres_server.drop_database(name)


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    made: list[httpx.Client] = []
    yield made
    for client in made:
        client.close()


def pending(server: AppServer, email: str, clients: list[httpx.Client]) -> httpx.Client:
    """A browser on ``server`` that passed the password of ``email`` and owes its code."""
    client = httpx.Client(base_url=server.url, headers=ORIGIN, timeout=10)
    clients.append(client)
    answer = client.post("/api/auth/sign-in", json={"email": email, "password": PASSWORD})
    assert answer.json() == {"second_factor": "required", "methods": ["totp"]}
    return client


def second_step(client: httpx.Client, **body: str) -> httpx.Response:
    return client.post("/api/auth/sign-in/second-factor", json=body)


def test_a_step_and_a_backup_code_work_once_on_every_instance(
    instances: tuple[AppServer, AppServer], clients: list[httpx.Client]
) -> None:
    a, b = instances
    email = "ada.instances.totp@example.com"
    owner = httpx.Client(base_url=a.url, headers=ORIGIN, timeout=10)
    clients.append(owner)
    assert (
        owner.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD}).status_code
        == 201
    )
    secret = owner.post("/api/auth/totp/enroll", json={"password": PASSWORD}).json()["secret"]
    step = steady_step_sync(6)
    confirmed = owner.post("/api/auth/totp/confirm", json={"code": code(secret, step - 1)})
    assert confirmed.status_code == 200, confirmed.text
    backup_codes = confirmed.json()["backup_codes"]

    # One after the other: the code used on A is refused on B.
    on_a, on_b = pending(a, email, clients), pending(b, email, clients)
    assert second_step(on_a, code=code(secret, step)).status_code == 200
    refused = second_step(on_b, code=code(secret, step))
    assert refused.status_code == 401
    assert refused.json()["reason"] == "WRONG_CODE"

    # At the same moment, on both: one wins, the other is refused.
    racers = [pending(a, email, clients), pending(b, email, clients)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda c: second_step(c, code=code(secret, step + 1)).status_code, racers)
        )
    assert sorted(answers) == [200, 401]

    racers = [pending(a, email, clients), pending(b, email, clients)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda c: second_step(c, backup_code=backup_codes[0]).status_code, racers)
        )
    assert sorted(answers) == [200, 401]
    # The loser is still pending, and another backup code completes it anywhere.
    (loser,) = [c for c in racers if c.get("/api/auth/session").json()["user"] is None]
    assert second_step(loser, backup_code=backup_codes[1]).status_code == 200
