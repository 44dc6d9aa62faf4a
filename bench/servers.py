"""One ASGI server process per contender, every one started with the same flags.

uvicorn: 1 worker, ``--loop uvloop --http httptools --no-access-log --log-level warning``.
granian: the same in its own words (1 worker, uvloop, HTTP/1, no access log, warning).
Everything else is each server's default, identically for every contender.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

import httpx
from harness.servers import ROOT, clean_env, free_ports, terminate

from bench.apps import APP_URL_VARIABLE

Server = Literal["uvicorn", "granian"]

_COMMON_FLAGS = ("--log-level", "warning", "--no-access-log")
_UVICORN = ("--workers", "1", "--loop", "uvloop", "--http", "httptools")
_GRANIAN = ("--interface", "asgi", "--factory", "--workers", "1", "--loop", "uvloop", "--http", "1")


def server_command(server: Server, target: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The command line for ``target`` (``module:factory``) on ``port``, plus ``extra`` flags."""
    where = ("--host", "127.0.0.1", "--port", str(port))
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "--factory", target, *where, *_UVICORN,
                *_COMMON_FLAGS, *extra]  # fmt: skip
    return [sys.executable, "-m", "granian", *_GRANIAN[:3], *where, *_GRANIAN[3:], *_COMMON_FLAGS,
            *extra, target]  # fmt: skip


@dataclass
class AppProcess:
    """One server process serving one factory; ``env`` adds to a cleaned environment."""

    name: str
    target: str
    server: Server = "uvicorn"
    #: Flags added to the server's common ones (e.g. granian's ``--backpressure``).
    server_flags: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    #: Prepended to PYTHONPATH (e.g. an older bastion's ``src`` for a before/after run).
    python_path: Sequence[str] = ()
    ready_path: str = "/json"
    #: Variables that receive the server's own URL (the example app reads ``APP_URL``).
    url_variables: Sequence[str] = (APP_URL_VARIABLE,)
    #: Log lines containing any of these are kept in :attr:`kept_lines` when it stops.
    keep_lines_with: Sequence[str] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    #: After :meth:`stop`: the exit status, and the log lines ``keep_lines_with`` asked for.
    returncode: int | None = None
    kept_lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        """The shell's environment minus bastion's variables (a stray one would change what is
        measured), plus the contender's."""
        env = clean_env()
        for name in ("DJANGO_SETTINGS_MODULE", "FORWARDED_ALLOW_IPS", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(name, None)
        for name in self.url_variables:
            env[name] = self.url
        env["PYTHONPATH"] = os.pathsep.join([*self.python_path, str(ROOT)])
        env.update(self.env)
        return env

    def start(self) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"bastion-bench-{self.name}-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            server_command(self.server, self.target, self.port, self.server_flags),
            env=self._env(),
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + self.ready_path, timeout=0.5)
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not start:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace") if self.log else ""

    def lines_with(self, texts: Sequence[str]) -> list[str]:
        """The log lines containing any of ``texts``, read line by line (a long log is large)."""
        if self.log is None or not texts:
            return []
        with open(self.log.name, errors="replace") as log:
            return [line.rstrip("\n") for line in log if any(text in line for text in texts)]

    def stop(self) -> None:
        """SIGTERM (a graceful shutdown, lifespan included), SIGKILL after 10 s."""
        terminate(self.process, 10)
        if self.process is not None:
            self.returncode = self.process.returncode
        self.process = None
        if self.log is not None:
            self.kept_lines = self.lines_with(self.keep_lines_with)
            self.log.close()
            with contextlib.suppress(OSError):
                os.unlink(self.log.name)
            self.log = None


@contextlib.contextmanager
def running(apps: Sequence[AppProcess], timeout: float = 120.0) -> Iterator[Sequence[AppProcess]]:
    """Start every process at once, wait until each answers, stop them all on the way out."""
    for app, port in zip(apps, free_ports(len(apps)), strict=True):
        app.port = port
    try:
        for app in apps:
            app.start()
        deadline = time.monotonic() + timeout
        for app in apps:
            app.wait_ready(deadline)
        yield apps
    finally:
        for app in apps:
            app.stop()
