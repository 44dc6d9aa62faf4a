"""Real servers for the tests: the example app and a second origin, beside ``harness.servers``.

Valkey, the hung TCP peer and the CLI runner live in :mod:`harness.servers`,
which the benchmarks start too; they are imported here so that a test has one
place to take its servers from. The app runs under uvicorn in its own process,
exactly as ``bastion demo`` runs it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
from harness.servers import (
    ROOT,
    HungServer,
    ValkeyServer,
    free_port,
    migrated_database,
    refused_url,
    run_cli,
    terminate,
    wait_for_port,
)

__all__ = [
    "ROOT",
    "AppServer",
    "HungServer",
    "StaticSite",
    "ValkeyServer",
    "free_port",
    "refused_url",
    "run_cli",
    "terminate",
    "wait_for_port",
]


@functools.cache
def _migrated_template() -> Path:
    """One SQLite file migrated by ``bastion migrate`` in this process, removed at exit."""
    template = Path(tempfile.mkdtemp(prefix="bastion-migrated-")) / "template.db"
    atexit.register(shutil.rmtree, template.parent, ignore_errors=True)
    migrated_database(template)
    return template


def _copy_migrated(url: str) -> bool:
    """Give a new SQLite file at ``url`` bastion's tables by copying a migrated one.

    ``bastion migrate`` costs about a second of CPU in a fresh interpreter, and
    dozens of servers start per run: this process migrates one file the way an
    operator does (:func:`harness.servers.migrated_database`) and copies it
    for every later server. Anything else (PostgreSQL, a file that exists) is
    left to ``bastion migrate`` itself; tests of migrating run the CLI.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return False
    target = Path(url.removeprefix(prefix))
    if target.exists():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_template(), target)
    return True


class AppServer:
    """The example app under uvicorn in a child process, configured by environment."""

    def __init__(
        self,
        env: Mapping[str, str],
        port: int | None = None,
        *,
        factory: str = "bastion_example:create_app",
        ready_path: str = "/static/app.css",
        app: str | None = None,
    ) -> None:
        """``factory``: another app (``module:function``) to serve, with a 200 at ``ready_path``.

        ``app``: a module-level app (``module:attribute``) to serve instead, as
        plain ``uvicorn module:app`` serves it.
        """
        self.port = port or free_port()
        self.env = dict(env)
        self.target = ["--factory", factory] if app is None else [app]
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
        # BASTION_<NAME> wins over <NAME>: a developer's shell must not leak either in.
        prefixes = (
            "APP_", "VALKEY_", "CACHE_", "DATABASE_", "SIGN_IN_", "SESSION_", "TRUSTED_", "BASTION_",
            "PASSWORD_",
        )  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
        env.update({"APP_URL": self.url, **self.env})
        if migrate and not _copy_migrated(env["DATABASE_URL"]):
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
                *self.target,
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


@contextlib.contextmanager
def two_instances(env: Mapping[str, str]) -> Iterator[tuple[AppServer, AppServer]]:
    """Two instances of the example app on one database (``env``), stopped on the way out.

    The first migrates the database; the second starts on it as it is, as a
    second replica of a deployment would.
    """
    first = AppServer(env).start()
    second = AppServer(env)
    try:
        second.start(migrate=False)
        yield first, second
    finally:
        first.stop()
        second.stop()


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
