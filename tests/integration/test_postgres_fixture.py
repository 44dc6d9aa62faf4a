"""The PostgreSQL fixtures give a real PostgreSQL 18 that a test can stop, kill and bring back.

Database tests lean on these guarantees (a fresh database per test, both URL
forms, a dead server that refuses fast, a restart on the same port), so they
are proved here against the server itself, through asyncpg.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from bastion.db import Database, migrate
from tests.support.postgres import PostgresServer, unique_database_name

# A refused TCP connect or a missing socket file fails at once; anything near
# the connect timeout would mean the client waited on a half-dead server.
FAST = 1.0


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def fetch(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        value: object = await conn.fetchval(sql)
        return value
    finally:
        await conn.close()


async def assert_refused(url: str) -> None:
    started = time.monotonic()
    with pytest.raises((ConnectionRefusedError, FileNotFoundError)):  # TCP / unix socket
        await asyncpg.connect(url, timeout=5)
    assert time.monotonic() - started < FAST


async def test_tcp_url_reaches_a_fresh_postgresql_18_database(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql://postgres@127.0.0.1:")
    conn = await asyncpg.connect(postgres_url, timeout=5)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        version = await conn.fetchval("SHOW server_version")
        assert isinstance(version, str)
        assert version.startswith("18")
        assert conn.get_server_version().major == 18
        assert await conn.fetchval("SELECT current_database()") == database_of(postgres_url)
        assert await conn.fetchval("SELECT host(inet_server_addr())") == "127.0.0.1"
        # Fresh: nothing but the catalogs.
        assert (
            await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
        )
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            assert await conn.fetchval(f"SHOW {setting}") == "off"
    finally:
        await conn.close()


async def test_socket_url_reaches_the_same_database(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    name = database_of(postgres_url)
    url = postgres_server.socket_url_for(name)
    assert url == (
        f"postgresql://postgres@/{name}?host={postgres_server.socket_dir}&port={postgres_server.port}"
    )
    assert (postgres_server.socket_dir / f".s.PGSQL.{postgres_server.port}").is_socket()
    conn = await asyncpg.connect(url, timeout=5)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        assert await conn.fetchval("SELECT current_database()") == name
        assert await conn.fetchval("SELECT inet_server_addr()") is None  # a unix socket
    finally:
        await conn.close()
    assert await fetch(postgres_server.socket_url, "SELECT current_database()") == "postgres"


def test_postgres_never_runs_as_root(postgres_server: PostgresServer) -> None:
    assert postgres_server.process is not None
    owner = Path(f"/proc/{postgres_server.process.pid}").stat().st_uid
    if os.geteuid() == 0:
        assert owner != 0
        assert postgres_server.account is not None
        assert owner == postgres_server.account.pw_uid
    else:
        assert owner == os.geteuid()


async def test_stop_refuses_fast_and_start_brings_back_the_same_server(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    conn = await asyncpg.connect(postgres_url, timeout=5)
    await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
    await conn.close()
    port = postgres_server.port

    postgres_server.stop()
    assert not postgres_server.running
    await assert_refused(postgres_url)
    await assert_refused(postgres_server.socket_url_for(database_of(postgres_url)))

    postgres_server.start()
    assert postgres_server.port == port
    assert await fetch(postgres_url, "SELECT n FROM kept") == 42


async def test_kill_then_start_recovers(postgres_server: PostgresServer, postgres_url: str) -> None:
    assert postgres_server.process is not None
    killed = postgres_server.process.pid
    conn = await asyncpg.connect(postgres_url, timeout=5)

    postgres_server.kill()
    assert not postgres_server.running
    assert not (postgres_server.data / "postmaster.pid").exists()
    with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError)):
        await conn.fetchval("SELECT 1")
    conn.terminate()
    await assert_refused(postgres_url)

    postgres_server.start()  # crash recovery, on the same port and data directory
    assert postgres_server.process is not None
    assert postgres_server.process.pid != killed
    assert await fetch(postgres_url, "SELECT current_database()") == database_of(postgres_url)
    assert await fetch(postgres_server.socket_url, "SELECT 1") == 1


async def test_kill_twice_and_stop_after_kill_are_harmless(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    postgres_server.kill()
    postgres_server.kill()
    postgres_server.stop()
    postgres_server.start()
    postgres_server.start()  # already running: no second postmaster
    assert await fetch(postgres_url, "SELECT 1") == 1


def test_a_server_left_stopped_is_restarted_by_the_fixture(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Teardown must restart the server to drop the database; an error there fails this test."""
    postgres_server.stop()


async def test_create_and_drop_database(postgres_server: PostgresServer) -> None:
    name = unique_database_name("create drop/Test[1]")
    assert name.startswith("t_create_drop_test_1_")
    url = postgres_server.create_database(name)
    assert url == f"postgresql://postgres@127.0.0.1:{postgres_server.port}/{name}"
    conn = await asyncpg.connect(url, timeout=5)  # left open: the drop must not wait for it
    try:
        assert await conn.fetchval("SELECT current_database()") == name
        postgres_server.drop_database(name)
    finally:
        conn.terminate()
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        await asyncpg.connect(url, timeout=5)
    postgres_server.drop_database(name)  # already gone: no error
    with pytest.raises(ValueError, match="database names"):
        postgres_server.create_database('x"; DROP DATABASE postgres; --')


async def test_a_fresh_server_starts_fast_and_close_removes_everything() -> None:
    started = time.perf_counter()
    server = PostgresServer().start()
    elapsed = time.perf_counter() - started
    try:
        print(
            f"session start {elapsed:.3f}s (initdb {server.init_seconds:.3f}s,"
            f" postmaster {server.start_seconds:.3f}s)"
        )
        assert elapsed < 20, server.log_tail()
        assert await fetch(server.url, "SELECT 1") == 1
    finally:
        server.close()
    assert not server.running
    assert not server.dir.exists()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as postgres binds it
        sock.bind(("127.0.0.1", server.port))  # released


async def test_the_app_database_layer_reaches_postgres_over_the_unix_socket(
    postgres_server: PostgresServer,
) -> None:
    """The ``?host=/socket/dir`` form that psql and pg_dump print works end to end."""
    url = postgres_server.socket_url_for("postgres")
    assert "?host=/" in url
    await migrate(url)
    database = Database(url)
    try:
        assert await database.ping()
    finally:
        await database.dispose()
