"""Fixtures that start and stop real servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import valkey

from bastion.cache import Cache, ValkeyOptions
from bastion.config import Settings, reset_settings
from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.servers import HungServer, ValkeyServer
from tests.support.system import SetupError, ensure


def pytest_collection_finish(session: pytest.Session) -> None:
    """Install the Debian programs the collected tests run (Chromium, wrk, openssl).

    The README's ``uv run pytest`` is the whole set-up on a fresh machine: as
    root the missing programs are installed with apt-get, otherwise the run
    stops here with one line naming the command, instead of failing test by
    test deep inside a fixture.
    """
    if session.config.option.collectonly:
        return
    try:
        installed = ensure(item.path for item in session.items)
    except SetupError as error:
        pytest.exit(f"bastion tests: {error}", returncode=pytest.ExitCode.USAGE_ERROR)
    if installed:
        session.config.get_terminal_writer().line(
            f"bastion tests: installed {', '.join(installed)}"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: they are the slowest, and they hold an event loop while they run."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees the developer's shell configuration or another test's settings.

    Every variable the settings model reads is cleared, taken from the model
    itself, so a setting added tomorrow is covered without anyone listing it.
    """
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[ValkeyServer]:
    server = ValkeyServer().start()
    yield server
    server.close()


@pytest.fixture
def valkey_url(valkey_server: ValkeyServer) -> Iterator[str]:
    """A running Valkey, emptied after each test."""
    if valkey_server.process is None:
        valkey_server.start()
    yield valkey_server.url
    if valkey_server.process is None:  # a test killed it
        valkey_server.start()
    with valkey.Valkey.from_url(valkey_server.url) as client:
        client.flushall()


@pytest.fixture
def raw_valkey(valkey_url: str) -> Iterator[valkey.Valkey]:
    """A plain client, to look at what bastion actually wrote."""
    with valkey.Valkey.from_url(valkey_url) as client:
        yield client


@pytest.fixture
def hung_server() -> Iterator[HungServer]:
    with HungServer() as server:
        yield server


def make_cache(
    url: str | None,
    *,
    command_timeout: float = 0.5,
    prefix: str = "test:",
    failures: int = 5,
    cooldown: float = 5.0,
) -> Cache:
    if url is None:
        return Cache(None, prefix)
    options = ValkeyOptions(
        url=url,
        command_timeout=command_timeout,
        breaker_failures=failures,
        breaker_cooldown=cooldown,
    )
    return Cache(options, prefix)


@pytest.fixture
async def cache(valkey_url: str) -> AsyncIterator[Cache]:
    """A Cache on the real Valkey, with generous timeouts so semantics tests never flake."""
    instance = make_cache(valkey_url)
    yield instance
    await instance.aclose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL 18 cluster per session: initdb costs 0.5-1.5 s, a database ~0.1 s."""
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database for this test, as ``postgresql://postgres@127.0.0.1:PORT/DB``.

    Dropped afterwards (open connections included). A test that stopped or killed
    the server gets it restarted first, on the same port and data directory.
    """
    if not postgres_server.running:
        postgres_server.start()
    name = unique_database_name(request.node.name)
    url = postgres_server.create_database(name)
    yield url
    if not postgres_server.running:
        postgres_server.start()
    postgres_server.drop_database(name)
