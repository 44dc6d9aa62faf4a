"""What every scenario shares: its options, the checks it asks, and its figures as JSON.

A scenario measures and returns plain data (dicts, lists, numbers); the run
writes it to ``bench/results/<scenario>.json`` and :mod:`bench.report`
renders RESULTS.md from those files. Nothing here knows a scenario: this is
the bottom of ``bench/``, and every other module may import it.
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
import statistics
import sys
import threading
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from harness.servers import ROOT, migrated_database
from harness.wrk import WrkRun, run_wrk

RESULTS_DIR = ROOT / "bench" / "results"
RESULTS_MD = ROOT / "bench" / "RESULTS.md"
OK_BODY = "200 {'ok': True}"
#: wrk runs at once in a smoke run: more starve a slow contender (Django) of any answer.
SMOKE_AT_ONCE = 4
#: What a JSON result holds: numbers, text, lists and objects of them.
Data = dict[str, Any]


@dataclass(frozen=True)
class Check:
    """One question asked of a contender before it is measured."""

    scenario: str
    contender: str
    question: str
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: int
    warmup: int
    #: "full", "quick" or "smoke" (the test's: every scenario, wrk runs side by side).
    mode: str
    scenarios: tuple[str, ...]
    results: Path
    output: Path | None
    #: Another bastion's ``src`` (``--baseline``, or ``--before REV`` exported).
    baseline: Path | None = None
    #: What the baseline is called in the report: the revision, or the path.
    baseline_name: str = ""
    contenders: tuple[str, ...] = ()
    cache_rounds: int = 30
    cache_ops: int = 1000
    first_requests: int = 20
    load_seconds: int = 20
    #: bench.inprocess: rounds and requests per round in one child, children per revision.
    inprocess: tuple[int, int, int] = (30, 1000, 3)

    def chosen(self, keys: Iterable[str], smoke: Collection[str]) -> list[str]:
        """The contenders to start: every one of ``keys``, or in a smoke run only ``smoke`` (one
        per server kind proves the scenario runs; the test checks the others' shape)."""
        return [key for key in keys if self.mode != "smoke" or key in smoke]


@dataclass
class Context:
    """One run: its options, a scratch directory, the shared Valkey, what was asked and found."""

    options: Options
    tmp: Path
    valkey_url: str
    #: The shared Valkey's process, which a scenario may pin to a CPU of its own.
    valkey_pid: int
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _migrating: threading.Lock = field(default_factory=threading.Lock)

    def require(self, checks: Sequence[Check]) -> None:
        """Keep the answers; stop the run on a wrong one, since the figures would mean nothing."""
        self.checks.extend(checks)
        failed = [f"  {c}" for c in checks if not c.ok]
        if failed:
            raise RuntimeError("a contender answered wrongly, not measured:\n" + "\n".join(failed))

    def database(self, name: str) -> str:
        """A fresh SQLite database with bastion's tables: ``bastion migrate`` runs once per run
        (a command costs seconds), and each scenario gets its own copy of the result."""
        migrated = self.tmp / "migrated.db"
        with self._migrating:  # a smoke run's scenarios run side by side
            if not migrated.exists():
                migrated_database(migrated)
        shutil.copyfile(migrated, self.tmp / f"{name}.db")
        return f"sqlite:///{self.tmp / name}.db"

    def script(self, name: str, text: str) -> Path:
        path = self.tmp / f"{name}.lua"
        path.write_text(text)
        return path


@dataclass(frozen=True)
class Cell:
    """One contender on one request: what wrk runs in every round."""

    name: str
    url: str
    script: Path
    connections: int = 32


def measure(
    context: Context, cells: Sequence[Cell], warmup: int | None = None
) -> list[list[WrkRun]]:
    """Warm every cell, then rounds of every cell in order (A B C, A B C); in a smoke run four at
    a time (the figures mean nothing; it proves every contender serves under wrk)."""
    options = context.options
    warm = options.warmup if warmup is None else warmup
    for cell in cells if warm > 0 else ():
        run_wrk(cell.url, warm, cell.script, cell.connections)
    runs: list[list[WrkRun]] = [[] for _ in cells]
    for number in range(options.rounds):
        if options.mode == "smoke":
            with concurrent.futures.ThreadPoolExecutor(SMOKE_AT_ONCE) as pool:
                done = pool.map(
                    lambda c: run_wrk(c.url, options.seconds, c.script, c.connections), cells
                )
                for mine, run in zip(runs, done, strict=True):
                    mine.append(run)
        else:
            for mine, cell in zip(runs, cells, strict=True):
                mine.append(run_wrk(cell.url, options.seconds, cell.script, cell.connections))
        say(f"  round {number + 1}/{options.rounds} done")
    for cell, mine in zip(cells, runs, strict=True):
        bad = sum(r.non_2xx for r in mine), sum(r.socket_errors for r in mine)
        if any(bad):
            context.problems.append(f"{cell.name}: {bad[0]} non-2xx, {bad[1]} socket errors")
    return runs


def summary(runs: Sequence[WrkRun]) -> Data:
    """One contender on one request over the rounds: medians, worst max, sums, and each round."""

    median = statistics.median
    return {
        "rps": median(r.rps for r in runs),
        "p50_ms": median(r.p50_ms for r in runs),
        "p99_ms": median(r.p99_ms for r in runs),
        "p999_ms": median(r.p999_ms for r in runs),
        "max_ms": max(r.max_ms for r in runs),
        "requests": sum(r.requests for r in runs),
        "non_2xx": sum(r.non_2xx for r in runs),
        "socket_errors": sum(r.socket_errors for r in runs),
        "rounds": [r.rps for r in runs],
    }


def paired(top: Sequence[WrkRun], bottom: Sequence[WrkRun]) -> Data:
    """The median of per-round ratios of req/s (each pair ran in one round), and their range."""
    ratios = [a.rps / b.rps for a, b in zip(top, bottom, strict=True)]
    return {"median": statistics.median(ratios), "low": min(ratios), "high": max(ratios)}


def answer(response: httpx.Response) -> str:
    try:
        body: object = response.json()
    except ValueError:
        body = response.text[:80]
    return f"{response.status_code} {body!r}"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def write_results(directory: Path, name: str, data: Data) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path


def read_results(directory: Path) -> dict[str, Data]:
    """Every ``<name>.json`` in ``directory``, by name."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}
