"""bastion's namespace in a shared database, on SQLite and PostgreSQL.

Two promises. An existing deployment, at the head an older bastion left it
(unprefixed tables, its revision in ``alembic_version``), upgrades in place:
nothing is lost, a browser signed in before the upgrade is still signed in,
and the result has exactly the names a fresh database gets. And beside an app
with its own ``users`` and ``sessions`` tables and its own Alembic history
(whose revision id is even one of bastion's old ones), ``bastion migrate``
touches nothing of the app's.

The older database comes from tests/fixtures/legacy_0002.*.sql, dumped from
that release's own migrations (the header says how); its rows are written
with bastion's own session HMAC and password hasher, as that release wrote them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from alembic.config import Config
from procrastinate.schema import SchemaManager

from bastion.auth._passwords import Passwords
from bastion.auth._sessions import COOKIE_NAME, hash_token
from bastion.cli._migrate import describe
from bastion.config import load_settings
from bastion.db import migrate
from bastion_example.app import create_app
from tests.integration.auth.conftest import inner_app
from tests.support.postgres import PostgresServer, unique_database_name

FIXTURES = Path(__file__).parents[2] / "fixtures"
SECRET_KEY = "upgrade-test-" + "k" * 60
EMAIL = "kept@example.com"

#: Old table -> new table, and the rows the test puts in each.
TABLES = {
    "users": "bastion_user",
    "sessions": "bastion_session",
    "audit_log": "bastion_audit_log",
    "job_runs": "bastion_job_run",
}


@dataclass
class Backend:
    """One database of one kind, reached with plain SQL (no bastion code in between)."""

    url: str
    kind: str

    def run(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as db:
                return [tuple(row) for row in db.execute(sql.replace("$", "?"), args)]
        return asyncio.run(_pg_fetch(self.url, _numbered(sql), *args))

    def script(self, sql: str) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as db:
                db.executescript(sql)
        else:
            asyncio.run(_pg_script(self.url, sql))

    def tables(self) -> set[str]:
        """The tables, procrastinate's aside."""
        if self.kind == "sqlite":
            rows = self.run("SELECT name FROM sqlite_master WHERE type = 'table'")
        else:
            rows = self.run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row[0] for row in rows if not row[0].startswith("procrastinate_")}

    def names(self) -> set[str]:
        """Every name the schema holds (tables, indexes, sequences, constraints, triggers,
        functions), procrastinate's aside: what must match a fresh database's."""
        if self.kind == "sqlite":
            rows = self.run("SELECT type || ' ' || name FROM sqlite_master")
        else:
            rows = self.run(
                "SELECT c.relkind::text || ' ' || c.relname FROM pg_class c JOIN pg_namespace n"
                " ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
                " UNION SELECT 'constraint ' || conname FROM pg_constraint c JOIN pg_namespace n"
                " ON n.oid = c.connamespace WHERE n.nspname = 'public'"
                " AND c.conrelid::regclass::text NOT LIKE 'procrastinate%'"
                " UNION SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal"
                " UNION SELECT 'function ' || proname FROM pg_proc p JOIN pg_namespace n"
                " ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
            )
        return {row[0] for row in rows if "procrastinate" not in row[0]}


def _numbered(sql: str) -> str:
    parts = sql.split("$")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


async def _pg_fetch(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(sql, *args)]
    finally:
        await connection.close()


async def _pg_script(url: str, sql: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Backend:
    if kind == "sqlite":
        return Backend(f"sqlite:///{tmp_path / 'app.db'}", kind)
    return Backend(request.getfixturevalue("postgres_url"), kind)


@pytest.fixture
def fresh(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A second, empty database of the same kind, for what a fresh migrate makes."""
    if kind == "sqlite":
        yield Backend(f"sqlite:///{tmp_path / 'fresh.db'}", kind)
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = unique_database_name("fresh")
    yield Backend(server.create_database(name), kind)
    server.drop_database(name)


def bastion_migrate(url: str) -> list[str]:
    """``bastion migrate`` as the console script an operator runs; its output lines."""
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "migrate"],
        env={"PATH": "", "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def load_legacy(database: Backend) -> str:
    """The older bastion's database, with a user, two live sessions, audit rows and a job
    run; returns the token of a session cookie issued before the upgrade."""
    database.script((FIXTURES / f"legacy_0002.{database.kind}.sql").read_text())
    if database.kind == "postgresql":
        database.script(SchemaManager.get_schema())  # the rest of that release's 0002
    now = datetime.now(UTC)
    if database.kind == "sqlite":
        now = now.replace(tzinfo=None)
    password_hash = asyncio.run(Passwords().hash("a long enough password 1"))
    database.run(
        "INSERT INTO users (email, password_hash, is_admin, created_at) VALUES ($, $, $, $)",
        EMAIL,
        password_hash,
        False,
        now,
    )
    (user_id,) = database.run("SELECT id FROM users")[0]
    token = secrets.token_urlsafe(32)
    for each in (token, secrets.token_urlsafe(32)):
        database.run(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_seen_at)"
            " VALUES ($, $, $, $, $)",
            hash_token(each, SECRET_KEY.encode()),
            user_id,
            now,
            now + timedelta(days=7),
            now,
        )
    for action in ("sign_up", "sign_in", "sign_in"):
        database.run(
            "INSERT INTO audit_log (at, action, subject, outcome, details) VALUES ($, $, $, $, $)",
            now,
            action,
            EMAIL,
            "success",
            json.dumps({"n": action}),
        )
    database.run(
        "INSERT INTO job_runs (job_id, task, attempt, outcome, started_at, finished_at)"
        " VALUES ($, $, $, $, $, $)",
        7,
        "bastion.sessions.clean",
        1,
        "succeeded",
        now,
        now,
    )
    return token


async def session_of(url: str, token: str) -> httpx.Response:
    settings = load_settings(
        DATABASE_URL=url,
        SECRET_KEY=SECRET_KEY,
        APP_URL="http://testserver",
        ALLOWED_HOSTS="testserver",
    )
    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
        base_url="http://testserver",
        cookies={COOKIE_NAME: token},
    ) as client:
        response = await client.get("/api/auth/session")
    await inner_app(app).state.database.dispose()
    return response


def test_an_older_bastion_database_upgrades_in_place(database: Backend, fresh: Backend) -> None:
    token = load_legacy(database)
    counts = {old: database.run(f"SELECT count(*) FROM {old}")[0][0] for old in TABLES}
    assert counts == {"users": 1, "sessions": 2, "audit_log": 3, "job_runs": 1}

    lines = bastion_migrate(database.url)
    assert lines == [
        "bastion: renamed an older bastion's tables: users -> bastion_user, sessions -> "
        "bastion_session, audit_log -> bastion_audit_log, job_runs -> bastion_job_run",
        "bastion: moved revision 0002 from alembic_version to bastion_alembic_version",
        "bastion: applied migration 0003: Accounts a team can run: session public ids, password "
        "resets and known devices.",
        "bastion: applied migration 0004: A second factor: TOTP secrets, backup codes, passkeys, "
        "WebAuthn challenges, pending sign-ins.",
        "bastion: the database is at the latest migration (0004)",
    ]
    after = {old: database.run(f"SELECT count(*) FROM {new}")[0][0] for old, new in TABLES.items()}
    assert after == counts
    assert database.run("SELECT version_num FROM bastion_alembic_version") == [("0004",)]
    # The sessions issued before the upgrade got public ids of their own.
    public_ids = [row[0] for row in database.run("SELECT public_id FROM bastion_session")]
    assert len(set(public_ids)) == 2
    assert all(len(each) >= 22 for each in public_ids)

    # Exactly the names a fresh database gets: no old table, index, trigger or sequence left.
    assert bastion_migrate(fresh.url) == [
        "bastion: applied migration 0001: Users, sessions and the append-only audit log.",
        "bastion: applied migration 0002: Background jobs: procrastinate's schema "
        "(PostgreSQL only) and the bastion_job_run history.",
        "bastion: applied migration 0003: Accounts a team can run: session public ids, password "
        "resets and known devices.",
        "bastion: applied migration 0004: A second factor: TOTP secrets, backup codes, passkeys, "
        "WebAuthn challenges, pending sign-ins.",
        "bastion: the database is at the latest migration (0004)",
    ]
    assert database.names() == fresh.names()
    assert not {name for name in database.names() if "bastion" not in name}

    # The cookie issued before the upgrade still signs its browser in.
    response = asyncio.run(session_of(database.url, token))
    assert response.status_code == 200, response.text
    assert response.json()["user"]["email"] == EMAIL
    stale = asyncio.run(session_of(database.url, "not-a-session"))
    assert (stale.status_code, stale.json()["reason"]) == (401, "SESSION_ENDED")

    # Still append-only, under the new name.
    with pytest.raises((sqlite3.DatabaseError, asyncpg.PostgresError), match="append-only"):
        database.run("DELETE FROM bastion_audit_log")

    # Run again (in-process: the console script's lines were checked above).
    assert describe(asyncio.run(migrate(database.url))) == [
        "bastion: nothing to apply, the database is at the latest migration (0004)"
    ]


def test_a_failed_upgrade_changes_nothing(database: Backend, tmp_path: Path) -> None:
    """One transaction on both backends (SQLite's DDL included): the last rename collides
    with a table already there, and the three before it are undone."""
    load_legacy(database)
    database.run("CREATE TABLE bastion_job_run (id integer)")
    before = database.names()
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "migrate"],
        env={"PATH": "", "DATABASE_URL": database.url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        'bastion: the database already holds "bastion_job_run", a name bastion\'s migration '
        "creates; nothing was changed\n"
    )
    assert database.names() == before
    assert database.run("SELECT version_num FROM alembic_version") == [("0002",)]
    assert database.run("SELECT count(*) FROM users") == [(1,)]


# -- beside an app with its own tables and its own Alembic history ----------------------------

_APP_ENV = """
from alembic import context
from sqlalchemy import create_engine

engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
with engine.begin() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""

# The app's first revision has the id of bastion's old head: a history that merely
# looks like bastion's must still be left alone.
_APP_REVISIONS = {
    "0002": """
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = None

def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")),
        sa.Column("data", sa.String(50)),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
""",
    "1a2b3c4d5e6f": """
import sqlalchemy as sa
from alembic import op

revision = "1a2b3c4d5e6f"
down_revision = "0002"

def upgrade():
    op.add_column("users", sa.Column("nickname", sa.String(50)))
""",
}


def app_alembic(tmp_path: Path, url: str, revisions: list[str]) -> Config:
    """The app's own Alembic project (its own script directory, a sync driver)."""
    scripts = tmp_path / "app_migrations"
    (scripts / "versions").mkdir(parents=True, exist_ok=True)
    (scripts / "env.py").write_text(_APP_ENV)
    for revision in revisions:
        (scripts / "versions" / f"{revision}.py").write_text(_APP_REVISIONS[revision])
    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.set_main_option("sqlalchemy.url", url.replace("postgresql://", "postgresql+psycopg://"))
    return config


def test_beside_an_app_with_its_own_tables_and_alembic(database: Backend, tmp_path: Path) -> None:
    command.upgrade(app_alembic(tmp_path, database.url, ["0002"]), "head")
    database.run("INSERT INTO users (id, name) VALUES (1, 'app user')")
    database.run("INSERT INTO sessions (id, user_id, data) VALUES (1, 1, 'app session')")

    report = asyncio.run(migrate(database.url))
    assert [m.revision for m in report.applied] == ["0001", "0002", "0003", "0004"]
    assert report.renamed == ()

    assert database.run("SELECT version_num FROM alembic_version") == [("0002",)]
    assert database.run("SELECT version_num FROM bastion_alembic_version") == [("0004",)]
    assert database.run("SELECT id, name FROM users") == [(1, "app user")]
    assert database.run("SELECT id, user_id, data FROM sessions") == [(1, 1, "app session")]
    # bastion added its own tables and nothing else: no unprefixed one.
    assert database.tables() == {"users", "sessions", "alembic_version"} | {
        "bastion_alembic_version",
        "bastion_password_reset",
        "bastion_known_device",
        "bastion_totp",
        "bastion_backup_code",
        "bastion_passkey",
        "bastion_webauthn_challenge",
        "bastion_pending_sign_in",
        *TABLES.values(),
    }

    # The app's history goes on as before, and bastion's is where it was.
    command.upgrade(app_alembic(tmp_path, database.url, ["0002", "1a2b3c4d5e6f"]), "head")
    assert database.run("SELECT version_num FROM alembic_version") == [("1a2b3c4d5e6f",)]
    assert database.run("SELECT name FROM users") == [("app user",)]
    assert asyncio.run(migrate(database.url)).applied == []
