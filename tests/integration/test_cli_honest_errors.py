"""The CLI names what actually went wrong: a closed pipe is no database error,
an empty stdin is no short password, and a refused database still is one."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg

from bastion.db import migrate
from tests.support.servers import ROOT, free_port, run_cli

ROWS = 3_000  # about 400 kB of text: far more than a pipe holds, so the writer meets EPIPE


def _migrated(tmp_path: Path) -> dict[str, str]:
    """A migrated SQLite database (in-process: the command under test is another one)."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/bastion.db"}
    asyncio.run(migrate(env["DATABASE_URL"]))
    return env


def _database_with_rows(tmp_path: Path) -> dict[str, str]:
    env = _migrated(tmp_path)
    with sqlite3.connect(tmp_path / "bastion.db") as db:
        db.executemany(
            "INSERT INTO bastion_audit_log (at, action, subject, client_ip, outcome, details)"
            " VALUES ('2026-01-01 00:00:00.000000', 'auth.sign_in.failed', ?, '192.0.2.1',"
            " 'failure', '{\"reason\": \"bad_password\"}')",
            [(f"user{i}@example.com",) for i in range(ROWS)],
        )
    return env


def test_audit_into_head_prints_one_row_and_exits_quietly(tmp_path: Path) -> None:
    env = _database_with_rows(tmp_path)
    for extra in ("", " --json"):
        piped = subprocess.run(
            [
                "bash",
                "-c",
                f"set -o pipefail; {sys.executable} -m bastion.cli audit --limit {ROWS}{extra}"
                " | head -1",
            ],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert piped.stderr == ""
        assert piped.returncode == 0
        assert len(piped.stdout.splitlines()) == 1


def test_a_refused_database_is_still_a_database_error() -> None:
    env = {**os.environ, "DATABASE_URL": f"postgresql://u@127.0.0.1:{free_port()}/x"}
    result = run_cli("audit", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("bastion: database unavailable"), result.stderr


def test_createuser_with_an_empty_stdin_says_no_password_arrived(tmp_path: Path) -> None:
    env = _migrated(tmp_path)
    for stdin in ("", "\n"):
        result = run_cli("createuser", "--email", "a@example.com", env=env, stdin=stdin)
        assert result.returncode == 1
        assert "no password arrived on stdin" in result.stderr
        assert "at least" not in result.stderr
    made = run_cli(
        "createuser", "--email", "a@example.com", env=env, stdin="a-long-enough-password\n"
    )
    assert made.returncode == 0, made.stderr


def test_createuser_refuses_a_common_password_in_one_line(tmp_path: Path) -> None:
    """The sign-up's policy, the same sentence: no administrator gets ``1234567890qwerty``."""
    env = _migrated(tmp_path)
    result = run_cli(
        "createuser", "--email", "root@example.com", "--admin", env=env, stdin="1234567890QWERTY\n"
    )
    assert result.returncode == 1
    assert (
        result.stderr == "bastion: this password is one of the most common ones; choose another\n"
    )
    assert result.stdout == ""
    with sqlite3.connect(tmp_path / "bastion.db") as db:
        assert db.execute("SELECT count(*) FROM bastion_user").fetchone() == (0,)


TAKEN = "a name bastion's migration creates; nothing was changed"


def test_migrate_over_a_taken_postgres_name_says_which_in_one_line(postgres_url: str) -> None:
    """procrastinate's schema goes to asyncpg directly: its bare error is a database's too."""

    async def run(statement: str) -> object:
        connection = await asyncpg.connect(postgres_url)
        try:
            return await connection.fetchval(statement)
        finally:
            await connection.close()

    asyncio.run(run("CREATE TABLE procrastinate_jobs (id bigserial PRIMARY KEY, note text)"))
    result = run_cli("migrate", env={**os.environ, "DATABASE_URL": postgres_url})
    assert result.returncode == 1
    assert result.stderr == f'bastion: the database already holds "procrastinate_jobs", {TAKEN}\n'
    assert asyncio.run(run("SELECT to_regclass('bastion_user')")) is None  # rolled back


def test_migrate_over_a_taken_sqlite_name_says_which_in_one_line(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "taken.db") as db:
        db.execute("CREATE TABLE bastion_user (nickname TEXT)")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/taken.db"}
    result = run_cli("migrate", env=env)
    assert result.returncode == 1
    assert result.stderr == f'bastion: the database already holds "bastion_user", {TAKEN}\n'
    with sqlite3.connect(tmp_path / "taken.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert tables == {"bastion_user"}  # one transaction: nothing else was created
