"""``bastion audit --jsonl`` exports the whole log, on both databases, in constant memory.

50,000 rows are bulk-inserted (one row a second from a fixed start), then
exported by the CLI in a child process whose peak memory is read from the
kernel: a full export must not cost more than an empty one plus a small
margin, which rules out loading the rows. The margin is half of what the
cheapest way of holding them costs (50,000 rows fetched as bare tuples take
about 32 MB in CPython; as ORM objects or as a list of JSON lines, more); a
streaming export's peak is the empty one's, to within a few pages. Time
bounds are checked on an inner window too.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from bastion.db import Database, migrate
from bastion.db._models import AuditLog
from tests.support.servers import ROOT

ROWS = 50_000
AUDIT_TABLE = AuditLog.metadata.tables[AuditLog.__tablename__]  # a Table, for a Core bulk insert
START = datetime(2026, 1, 1, tzinfo=UTC)
#: Peak memory an export of every row may add over an export of none.
MEMORY_MARGIN_KB = 16_000


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bastion.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def _fill(url: str) -> None:
    await migrate(url)
    database = Database(url)
    try:
        async with database.session() as db:
            for first in range(0, ROWS, 10_000):
                await db.execute(
                    insert(AUDIT_TABLE),
                    [
                        {
                            "at": START + timedelta(seconds=i),
                            "action": "auth.sign_in.failed",
                            "outcome": "failure",
                            "subject": f"user{i}@example.com",
                            "client_ip": "192.0.2.7",
                            "details": {"reason": "bad_password", "n": i},
                        }
                        for i in range(first, min(first + 10_000, ROWS))
                    ],
                )
            await db.commit()
    finally:
        await database.dispose()


def _export(url: str, *args: str, out: Path) -> int:
    """Run the export into ``out``; return the child's peak resident memory in kB."""
    env = {**os.environ, "DATABASE_URL": url}
    with out.open("wb") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", "bastion.cli", "audit", "--jsonl", *args],
            env=env,
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        assert child.stderr is not None
        errors = child.stderr.read().decode()
    assert child.returncode == 0, errors
    assert errors == ""
    return usage.ru_maxrss


def test_export_streams_every_row_in_constant_memory(database_url: str, tmp_path: Path) -> None:
    asyncio.run(_fill(database_url))

    everything = tmp_path / "all.jsonl"
    full_peak = _export(database_url, "--since", "2026-01-01", out=everything)
    ids = []
    with everything.open() as lines:
        for line in lines:
            row = json.loads(line)
            ids.append(row["id"])
    assert len(ids) == ROWS
    assert ids == sorted(ids)
    last = json.loads(everything.read_text().splitlines()[-1])
    assert last["subject"] == f"user{ROWS - 1}@example.com"
    assert last["details"] == {"reason": "bad_password", "n": ROWS - 1}

    window = tmp_path / "window.jsonl"
    _export(
        database_url,
        "--since",
        "2026-01-01T00:01:40Z",  # row 100
        "--until",
        "2026-01-01T01:00:00+00:00",  # row 3600, excluded
        out=window,
    )
    subjects = [json.loads(line)["subject"] for line in window.read_text().splitlines()]
    assert subjects == [f"user{i}@example.com" for i in range(100, 3600)]

    empty_peak = _export(database_url, "--since", "2030-01-01", out=tmp_path / "none.jsonl")
    assert (tmp_path / "none.jsonl").read_text() == ""
    assert full_peak - empty_peak < MEMORY_MARGIN_KB, (full_peak, empty_peak)


def test_since_without_jsonl_is_refused(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.db'}"}
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "audit", "--since", "2026-01-01"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "--jsonl" in result.stderr
