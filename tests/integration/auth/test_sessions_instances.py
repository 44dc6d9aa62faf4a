"""A session ended on one instance is refused at once on another (two processes, one PostgreSQL).

Nothing about a session is kept in an instance's memory: every request
resolves its cookie against the database, so there is nothing to invalidate
elsewhere. These tests hold the design to that.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.servers import AppServer, two_instances

PASSWORD = "correct horse battery staple 42"
ORIGIN = {"sec-fetch-site": "same-origin"}


@pytest.fixture(scope="module")
def instances(postgres_server: PostgresServer) -> Iterator[tuple[AppServer, AppServer]]:
    """Two instances of the example app on one database, for the whole module."""
    name = unique_database_name("sessions_instances")
    url = postgres_server.create_database(name)
    env = {
        "DATABASE_URL": url,
        "SIGN_IN_RATE_LIMIT": "1000/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "1000/minute",
        "SIGN_UP_RATE_LIMIT": "1000/minute",
    }
    try:
        with two_instances(env) as servers:
            yield servers
    finally:
        postgres_server.drop_database(name)


class Devices:
    """Browsers (cookie jars with a User-Agent) pointed at one instance or another."""

    def __init__(self) -> None:
        self.clients: list[httpx.Client] = []

    def new(self, server: AppServer, user_agent: str) -> httpx.Client:
        client = httpx.Client(
            base_url=server.url, headers={**ORIGIN, "user-agent": user_agent}, timeout=10
        )
        self.clients.append(client)
        return client

    def signed_in(self, server: AppServer, email: str, user_agent: str) -> httpx.Client:
        client = self.new(server, user_agent)
        response = client.post("/api/auth/sign-in", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return client

    def on(self, server: AppServer, client: httpx.Client) -> httpx.Client:
        """The same browser (cookie jar) sent to ``server``, as a load balancer would."""
        moved = self.new(server, client.headers["user-agent"])
        moved.cookies = client.cookies
        return moved


@pytest.fixture
def devices() -> Iterator[Devices]:
    made = Devices()
    yield made
    for client in made.clients:
        client.close()


def test_a_session_ended_on_one_instance_is_refused_on_the_other(
    instances: tuple[AppServer, AppServer], devices: Devices
) -> None:
    a, b = instances
    email = "ada.instances@example.com"
    laptop = devices.new(a, "laptop")
    signed_up = laptop.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    assert signed_up.status_code == 201
    phone = devices.signed_in(b, email, "phone")
    assert phone.get("/api/auth/session").status_code == 200
    assert devices.on(a, phone).get("/api/auth/session").status_code == 200  # both instances
    listed = laptop.get("/api/auth/sessions").json()["sessions"]
    (other,) = [s for s in listed if not s["current"]]
    assert laptop.delete(f"/api/auth/sessions/{other['id']}").status_code == 204
    # Ended on A; B refuses it on the very next request.
    refused = phone.get("/api/auth/session")
    assert refused.status_code == 401
    assert refused.json()["reason"] == "SESSION_ENDED"
    assert devices.on(b, laptop).get("/api/auth/session").status_code == 200


def test_revoke_others_on_one_instance_is_seen_by_the_other(
    instances: tuple[AppServer, AppServer], devices: Devices
) -> None:
    a, b = instances
    email = "bob.instances@example.com"
    desk = devices.new(b, "desk")
    desk.post("/api/auth/sign-up", json={"email": email, "password": PASSWORD})
    tablet = devices.signed_in(a, email, "tablet")
    phone = devices.signed_in(b, email, "phone")
    assert tablet.get("/api/auth/session").status_code == 200
    assert devices.on(a, desk).post("/api/auth/sessions/revoke-others").json() == {"revoked": 2}
    assert tablet.get("/api/auth/session").status_code == 401  # on A
    assert phone.get("/api/auth/session").status_code == 401  # on B
    (left,) = desk.get("/api/auth/sessions").json()["sessions"]
    assert left["current"] is True
