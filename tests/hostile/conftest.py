"""One example app per database for the whole hostile suite: SQLite and PostgreSQL, on Valkey."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import valkey

from bastion.config import load_settings
from tests.hostile.corpus import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.hostile.routes import Endpoint, example_endpoints
from tests.hostile.target import Target
from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.servers import AppServer, ValkeyServer


@pytest.fixture(scope="package", params=["sqlite", "postgresql"])
def target(
    request: pytest.FixtureRequest,
    valkey_server: ValkeyServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Target]:
    if valkey_server.process is None:
        valkey_server.start()
    postgres: PostgresServer | None = None
    name = unique_database_name("hostile")
    if request.param == "sqlite":
        database_url = f"sqlite:///{tmp_path_factory.mktemp('hostile') / 'bastion.db'}"
    else:
        postgres = request.getfixturevalue("postgres_server")
        if not postgres.running:
            postgres.start()
        database_url = postgres.create_database(name)
    server = AppServer(
        {
            "DATABASE_URL": database_url,
            "VALKEY_URL": valkey_server.url,
            "METRICS_ENABLED": "true",
            # Far above what the suite sends, and windows that outlast it, so
            # no limiter key expires between two snapshots.
            "SIGN_IN_RATE_LIMIT": "10000/day",
            "SIGN_IN_ACCOUNT_RATE_LIMIT": "10000/day",
            "SIGN_UP_RATE_LIMIT": "10000/day",
            "PASSWORD_RESET_RATE_LIMIT": "10000/day",
            "CACHE_COMMAND_TIMEOUT_MS": "500",
            # No periodic job during the suite: a deferred job is one a request made.
            "JOBS_SESSION_CLEANUP_SECONDS": "86400",
        }
    )
    target = None
    try:
        server.start()
        server.create_admin(ADMIN_EMAIL, ADMIN_PASSWORD)
        target = Target(server, database_url, valkey_server.url)
        yield target
    finally:
        if target is not None:
            target.close()
        server.stop()
        if postgres is not None:
            postgres.drop_database(name)
        with valkey.Valkey.from_url(valkey_server.url) as client:
            client.flushall()


@pytest.fixture(scope="package")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> list[Endpoint]:
    """The example app's routes, from its own router (nothing here lists a path)."""
    unused = Path(tmp_path_factory.mktemp("routes")) / "never-opened.db"
    found = example_endpoints(load_settings(DATABASE_URL=f"sqlite:///{unused}"))
    assert len(found) >= 15, found  # the router walk found the app, not a fragment of it
    return found
