"""Saying what the schema is: the health JSON, the startup warning, E051, the CLI's lines.

An app started on a database bastion never migrated works until the first
sign-in; each place an operator looks must say so, and say `bastion migrate`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import text

from bastion import Bastion
from bastion.cli import main
from bastion.cli._errors import describe_database_error
from bastion.config import load_settings
from bastion.db import Database, migrate
from bastion.db._migrate import alembic_config
from tests.support.postgres import PostgresServer


async def migrate_to(url: str, revision: str) -> None:
    """The database as a bastion whose head was ``revision`` left it."""
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(lambda c: command.upgrade(alembic_config(c), revision))
    finally:
        await database.dispose()


async def health(url: str) -> httpx.Response:
    bastion = Bastion(load_settings(DATABASE_URL=url))
    app = bastion.operations_app()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
        ) as client:
            return await client.get("/api/health")
    finally:
        await bastion.shutdown()


@pytest.mark.parametrize("state", ["missing", "behind", "current", "unknown"])
async def test_health_says_where_the_schema_stands(tmp_path: Path, state: str) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sqlite3.connect(tmp_path / "db.sqlite").close()
    if state != "missing":
        await migrate_to(url, "0001" if state == "behind" else "head")
    if state == "unknown":
        with sqlite3.connect(tmp_path / "db.sqlite") as db:
            db.execute("UPDATE bastion_alembic_version SET version_num = '0099'")
    response = await health(url)
    # The status code follows the database alone: it answered.
    assert response.status_code == 200
    assert response.json()["database"] is True
    assert response.json()["schema"] == state


async def test_postgres_health_says_missing(postgres_url: str) -> None:
    response = await health(postgres_url)
    assert (response.status_code, response.json()["schema"]) == (200, "missing")
    await migrate(postgres_url)
    assert (await health(postgres_url)).json()["schema"] == "current"


@pytest.mark.parametrize("state", ["missing", "behind", "current"])
async def test_one_warning_at_startup_names_bastion_migrate(
    tmp_path: Path, state: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    if state != "missing":
        await migrate_to(url, "0001" if state == "behind" else "head")
    bastion = Bastion(load_settings(DATABASE_URL=url))
    with caplog.at_level(logging.WARNING, logger="bastion.db"):
        async with bastion.lifespan():
            # The check runs beside the start; a current schema says nothing at all,
            # so wait for it by the database having been asked.
            assert bastion._schema_check is not None
            await asyncio.wait_for(asyncio.shield(bastion._schema_check), 5)
    warnings = [r for r in caplog.records if r.name == "bastion.db"]
    if state == "current":
        assert warnings == []
        return
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert "bastion migrate" in warnings[0].getMessage()
    assert state in warnings[0].getMessage()


def check_deploy(url: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "check", "--deploy", "--json"],
        env={"PATH": "", "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return {finding["id"] for finding in json.loads(result.stdout)}


def test_check_deploy_reports_a_missing_schema_as_e051(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sqlite3.connect(tmp_path / "db.sqlite").close()
    assert "bastion.E051" in check_deploy(url)  # behind and unknown: the unit tests
    asyncio.run(migrate(url))
    assert "bastion.E051" not in check_deploy(url)


# -- one line per failure, and "unavailable" only for a database that cannot be reached ---


def test_migrate_refuses_a_revision_it_does_not_know(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    asyncio.run(migrate(url))
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute("UPDATE bastion_alembic_version SET version_num = '0099'")
    monkeypatch.setenv("DATABASE_URL", url)
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "a bastion migration this version does not know" in err
    assert "0099" in err
    assert "unavailable" not in err


async def failure(url: str, sql: str = "SELECT count(*) FROM bastion_user") -> BaseException:
    database = Database(url, timeout=2)
    try:
        async with database.engine.connect() as connection:
            await connection.execute(text(sql))
    except Exception as exc:
        return exc
    finally:
        await database.dispose()
    raise AssertionError("the statement did not fail")


async def test_each_database_failure_has_its_own_line(
    tmp_path: Path, postgres_server: PostgresServer, postgres_url: str
) -> None:
    missing = describe_database_error(await failure(f"sqlite:///{tmp_path / 'empty.db'}"))
    assert missing == "the database has no bastion tables yet; run `bastion migrate` first"
    assert "no bastion tables yet" in describe_database_error(await failure(postgres_url))

    await migrate(postgres_url)
    role = f"stranger_{secrets.token_hex(4)}"  # the cluster is shared: a name of its own
    postgres_server.psql(f"CREATE ROLE {role} LOGIN")
    stranger = postgres_url.replace("postgres@", f"{role}@", 1)
    refused = describe_database_error(await failure(stranger))
    assert "refused permission" in refused

    nowhere = postgres_url.rsplit("/", 1)[0] + "/no_such_database"
    assert "does not exist" in describe_database_error(await failure(nowhere))

    down = describe_database_error(await failure("postgresql://postgres@127.0.0.1:1/db"))
    assert down.startswith("database unavailable (")
    for line in (missing, refused):
        assert "unavailable" not in line
