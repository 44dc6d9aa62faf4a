"""Cache on a throttled CPU: reads of a stored key while the app shares its core with busy loops.

The everyday case of a container at its CPU quota, or of a noisy neighbour:
the app's process is taken off the CPU for tens of milliseconds at a time,
while Valkey, on a core of its own, answers at once. One instance of the
example app (``uvicorn --factory bastion_example:create_app``, the production
path) runs on :data:`APP_CPU` beside ``neighbours`` busy-loop processes; wrk
runs on :data:`OTHER_CPU`, where the caller puts Valkey too (:func:`pinned`).
A key is stored with ``PUT /api/sandbox/cache/hot``, then :data:`CONNECTIONS`
keep-alive connections read it. What must hold: the reads stay hits (a late
process is not a slow Valkey) and the breaker never opens. The figures are
read as an operator reads them: ``/api/metrics`` and the app's log.

The benchmark's scenario (``bench.throttled``) and the test
``tests/integration/load/test_throttled_cpu.py`` both run :func:`measure`, so
they measure the very same thing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from harness.metrics import scrape, total
from harness.servers import ROOT, clean_env, free_port, migrated_database, terminate
from harness.wrk import run_wrk, static_script

__all__ = [
    "APP_CPU",
    "CONNECTIONS",
    "NEIGHBOURS",
    "OTHER_CPU",
    "SECONDS",
    "ThrottledRun",
    "has_two_cpus",
    "measure",
    "pinned",
]

#: The app and its busy neighbours share this core; Valkey and wrk have the other.
APP_CPU = 0
OTHER_CPU = 1
CONNECTIONS = 64
#: One run's length in the issue's measurement (issue 23).
SECONDS = 12
NEIGHBOURS = 2
HOT_PATH = "/api/sandbox/cache/hot"
#: The breaker's own transition lines; an opening ends with ``-> open``.
BREAKER_LINE = "cache breaker valkey:"
_BUSY_LOOP = "while True:\n    pass\n"


@dataclass(frozen=True)
class ThrottledRun:
    """One run: cache reads as the app counted them, the breaker's openings, what wrk saw."""

    requests: int
    reads: int
    misses: int
    #: Calls that failed or missed their deadline (``result="error"`` in the metrics).
    errors: int
    breaker_openings: int
    non_2xx: int
    socket_errors: int

    @property
    def miss_ratio(self) -> float:
        return self.misses / self.reads if self.reads else 0.0

    def data(self) -> dict[str, Any]:
        return {**asdict(self), "miss_ratio": self.miss_ratio}


def has_two_cpus() -> bool:
    """Whether this process may run on both CPUs the measurement pins to."""
    return {APP_CPU, OTHER_CPU} <= os.sched_getaffinity(0)


@contextlib.contextmanager
def pinned(pid: int, cpus: set[int]) -> Iterator[None]:
    """Every thread of process ``pid`` on ``cpus`` for a while (``0``: the calling thread only,
    and so whatever it starts, such as wrk); each thread's own affinity is restored after."""
    tasks = [0] if pid == 0 else [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    before = {task: os.sched_getaffinity(task) for task in tasks}
    for task in tasks:
        os.sched_setaffinity(task, cpus)
    try:
        yield
    finally:
        for task, cpu_set in before.items():
            with contextlib.suppress(ProcessLookupError):  # the process may have exited
                os.sched_setaffinity(task, cpu_set)


@contextlib.contextmanager
def _busy(cpu: int, count: int) -> Iterator[None]:
    """``count`` processes spinning on ``cpu``: the neighbours that throttle the app."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", _BUSY_LOOP], stdin=subprocess.DEVNULL)  # noqa: S603
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
def _example_app(env: Mapping[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """The example app under uvicorn, as an operator starts it; yields its URL and pid.

    Started on every CPU (a quick start), pinned by the caller once it answers.
    Stopped with SIGTERM, so that its log is complete when the caller reads it.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        *(sys.executable, "-m", "uvicorn", "--factory", "bastion_example:create_app"),
        *("--host", "127.0.0.1", "--port", str(port), "--no-server-header"),
        *("--log-level", "warning"),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and binaries
            command, env=clean_env({"APP_URL": url, **env}), cwd=ROOT, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/health/live", timeout=0.5).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"the example app did not start:\n{log.read_text()}")
        yield url, process.pid
    finally:
        terminate(process, 10)


def measure(
    valkey_url: str, *, neighbours: int, seconds: int, database_url: str | None = None
) -> ThrottledRun:
    """One run against the Valkey at ``valkey_url`` (which the caller pins to :data:`OTHER_CPU`),
    on ``database_url`` (a migrated database; by default a fresh SQLite file)."""
    with tempfile.TemporaryDirectory(prefix="bastion-throttled-") as scratch:
        workdir = Path(scratch)
        env = {
            "VALKEY_URL": valkey_url,
            "DATABASE_URL": database_url or migrated_database(workdir / "bastion.db"),
            "METRICS_ENABLED": "true",
        }
        log = workdir / "app.log"
        with _example_app(env, log) as (url, pid), pinned(pid, {APP_CPU}):
            stored = httpx.put(
                url + HOT_PATH,
                json={"value": {"n": 1}, "ttl": 600},
                headers={"Origin": url},
                timeout=30,
            )
            if stored.json().get("value") != {"n": 1}:
                raise RuntimeError(f"the key was not stored: {stored.text}")
            script = workdir / "get.lua"
            script.write_text(static_script("GET", {}))
            with _busy(APP_CPU, neighbours), pinned(0, {OTHER_CPU}):
                load = run_wrk(url + HOT_PATH, seconds, script, connections=CONNECTIONS)
            samples = scrape(url)
        text = log.read_text(errors="replace")
    lines = [line for line in text.splitlines() if BREAKER_LINE in line]
    hits, misses, errors = (
        round(total(samples, "bastion_cache_operations_total", result=result))
        for result in ("hit", "miss", "error")
    )
    return ThrottledRun(
        requests=load.requests,
        reads=hits + misses,
        misses=misses,
        errors=errors,
        breaker_openings=sum(1 for line in lines if line.rstrip().endswith("-> open")),
        non_2xx=load.non_2xx,
        socket_errors=load.socket_errors,
    )
