"""Scenarios 6 and 7 of ``python -m bench``: the example app holding under load.

6. sign-in flood: one client IP floods ``POST /api/auth/sign-in`` with a wrong
   password against two instances of the example app that share one Valkey
   and one database. The refusals are timed against a bare ``POST`` answered
   by the same processes, through the same ``protect()`` stack
   (:mod:`bench.example_apps`). What must hold: refusals stay cheap, no more
   attempts than the shared limit reach the password check, Valkey (not the
   local fallback) decides, nothing fails, and after a graceful stop the
   ``auth.sign_in.blocked`` audit rows add up to the 429s answered.
7. cache under saturation: one instance of the example app reads one stored
   key (``GET /api/sandbox/cache/hot``) under wrk over 16 and 64 connections.
   What must hold: a healthy Valkey stays a hit (a late event loop must not
   turn hits into deadline misses), its breaker never opens, every answer is
   200; and how late the event loop ran is reported beside it.

Both drive real servers on loopback with wrk and read what an operator would
read: ``/api/metrics``, the app's log, and ``bastion audit --json``.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tests.support.load import Samples, scrape, total
from tests.support.servers import run_cli

from bastion.config import Settings
from bench.apps import APP_URL_VARIABLE
from bench.example_apps import BARE_POST_PATH
from bench.servers import AppProcess, running
from bench.suite import OK_BODY, Check, Figures, Options, Report, _answer, _require, _say, _script
from bench.wrk import WrkRun, run_wrk, static_script

__all__ = [
    "FLOOD_LIMIT",
    "FloodResult",
    "FloodRound",
    "LoopLag",
    "SaturationCell",
    "SaturationResult",
    "scenario_flood",
    "scenario_saturation",
]

FLOOD = "sign-in flood"
SATURATION = "cache saturation"
#: SIGN_IN_RATE_LIMIT of the flood: per client IP, shared by both instances through Valkey.
FLOOD_LIMIT = 10
FLOOD_WINDOW_S = 60.0
#: High enough that the per-IP limit is the one that binds.
FLOOD_ACCOUNT_LIMIT = "10000/minute"
#: Per instance; the two wrk runs go at once, so 64 connections in all.
FLOOD_CONNECTIONS = 32
SIGN_IN_PATH = "/api/auth/sign-in"
#: The flood's body, and the bare POST's too, so both requests are the same size.
FLOOD_BODY = '{"email": "victim@example.com", "password": "not the password"}'
SATURATION_CONNECTIONS = (16, 64)
HOT_PATH = "/api/sandbox/cache/hot"
HOT_VALUE: dict[str, Any] = {"n": 1, "note": "hot"}
HOT_TTL = 600
#: The breaker's own transition lines (WARNING when it opens, INFO when it closes).
BREAKER_LINE = "cache breaker valkey:"
#: uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean exit too.
GRACEFUL = (0, -15)
#: wrk stops with a request in flight per connection; the server answers it a moment later.
SETTLE_S = 0.3
#: How long to wait at most for the sign-ins in flight to be answered (see ``_settled``).
SETTLE_MAX_S = 15.0
EXAMPLE_URL_VARIABLES = (APP_URL_VARIABLE, "APP_URL")
READY_PATH = "/api/health/live"


# --- what an operator reads -----------------------------------------------------------


def _valkey_database(valkey_url: str, number: int) -> str:
    """The run's Valkey, another database: the scenario's keys start empty, apart from the rest."""
    parts = urlsplit(valkey_url)
    return f"{parts.scheme}://{parts.netloc}/{number}"


def _cli_env(database_url: str) -> dict[str, str]:
    """The operator's shell: no stray bastion variable, only the bench's database."""
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env["DATABASE_URL"] = database_url
    return env


def migrated_database(directory: Path, name: str) -> str:
    """A fresh SQLite file with bastion's tables, made with ``bastion migrate``."""
    url = f"sqlite:///{directory / name}.db"
    done = run_cli("migrate", env=_cli_env(url))
    if done.returncode != 0:
        raise RuntimeError(f"bastion migrate failed:\n{done.stderr}")
    return url


def audit_rows(database_url: str, action: str) -> list[dict[str, Any]]:
    """What ``bastion audit --json --action ACTION`` shows an operator."""
    done = run_cli(
        "audit", "--json", "--limit", "10000", "--action", action, env=_cli_env(database_url)
    )
    if done.returncode != 0:
        raise RuntimeError(f"bastion audit failed:\n{done.stderr}")
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def _requests(samples: Samples, status: str | None = None, **labels: str) -> int:
    """``bastion_http_requests_total`` for ``labels``, of one status or all of them."""
    if status is not None:
        labels["status"] = status
    return round(total(samples, "bastion_http_requests_total", **labels))


def _server_errors(samples: Samples) -> int:
    return round(
        sum(
            value
            for (name, labels), value in samples.items()
            if name == "bastion_http_requests_total" and dict(labels)["status"].startswith("5")
        )
    )


def _example(
    name: str, target: str, env: Mapping[str, str], keep: Sequence[str] = ()
) -> AppProcess:
    return AppProcess(
        name,
        target,
        env=env,
        ready_path=READY_PATH,
        url_variables=EXAMPLE_URL_VARIABLES,
        keep_lines_with=keep,
    )


@dataclass
class LoopLag:
    """Samples of ``bastion_event_loop_lag_seconds`` (one per 100 ms), as histogram deltas.

    ``buckets`` maps each upper bound in seconds (``math.inf`` last) to how
    many samples were at most that late, as Prometheus keeps them.
    """

    buckets: dict[float, float] = field(default_factory=dict)
    seconds: float = 0.0
    count: float = 0.0

    @classmethod
    def of(cls, samples: Samples) -> LoopLag:
        lag = cls()
        for (name, labels), value in samples.items():
            if name == "bastion_event_loop_lag_seconds_bucket":
                lag.buckets[float(dict(labels)["le"])] = value
        lag.seconds = total(samples, "bastion_event_loop_lag_seconds_sum")
        lag.count = total(samples, "bastion_event_loop_lag_seconds_count")
        return lag

    def __sub__(self, other: LoopLag) -> LoopLag:
        return LoopLag(
            {le: n - other.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.seconds - other.seconds,
            self.count - other.count,
        )

    def __add__(self, other: LoopLag) -> LoopLag:
        bounds = sorted({*self.buckets, *other.buckets})
        return LoopLag(
            {le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0) for le in bounds},
            self.seconds + other.seconds,
            self.count + other.count,
        )

    @property
    def mean_ms(self) -> float:
        return 1e3 * self.seconds / self.count if self.count else 0.0

    def bound_ms(self, share: float) -> float:
        """The smallest bucket bound that ``share`` of the samples were under, in ms."""
        for le in sorted(self.buckets):
            if self.buckets[le] >= share * self.count:
                return le * 1e3
        return math.inf


# --- scenario 6: sign-in flood ------------------------------------------------------------


@dataclass(frozen=True)
class FloodRound:
    """One round: the flood on both instances at once, then the bare POST on both at once."""

    blocked: tuple[WrkRun, ...]
    bare: tuple[WrkRun, ...]
    #: Answered during this round's flood, both instances: 401 (reached the password check), 429.
    reached: int
    refused: int
    #: Decisions the local fallback took during this round's flood (Valkey missed the deadline).
    fallbacks: int


@dataclass
class FloodResult:
    seconds: int
    rounds: list[FloodRound] = field(default_factory=list)
    #: 401s before round 1: the checks' attempts (they spend the limit) and the warm-up's.
    reached_before: int = 0
    #: From the first sign-in attempt of the run to the end of the last flood, in seconds.
    span_s: float = 0.0
    #: Sign-in answers by status, both instances, whole run (from their metrics).
    answers: dict[str, int] = field(default_factory=dict)
    fallbacks: int = 0
    server_errors: int = 0
    #: Both instances' event-loop lag samples, whole run.
    lag: LoopLag = field(default_factory=LoopLag)
    returncodes: tuple[int | None, ...] = ()
    blocked_rows: int = 0
    blocked_count: int = 0
    blocked_clients: tuple[str, ...] = ()
    failed_rows: int = 0

    @property
    def instances(self) -> int:
        return len(self.rounds[0].blocked) if self.rounds else 0

    @property
    def reached(self) -> int:
        return self.answers.get("401", 0)

    @property
    def refused(self) -> int:
        return self.answers.get("429", 0)

    @property
    def sign_ins(self) -> int:
        return sum(self.answers.values())

    @property
    def windows(self) -> int:
        """How many limit windows the run's attempts spanned: the limit holds per window."""
        return max(1, math.ceil(self.span_s / FLOOD_WINDOW_S))

    @property
    def local_share(self) -> float:
        return self.fallbacks / self.sign_ins if self.sign_ins else 0.0

    @property
    def graceful(self) -> bool:
        return bool(self.returncodes) and all(code in GRACEFUL for code in self.returncodes)

    def ratios(self, instance: int | None = None) -> list[float]:
        """Refused ÷ bare POST req/s, per round (and per instance unless one is named)."""
        picked = range(self.instances) if instance is None else (instance,)
        return [r.blocked[i].rps / r.bare[i].rps for r in self.rounds for i in picked]

    def ratio(self, instance: int | None = None) -> float:
        return statistics.median(self.ratios(instance))

    def figures(self, instance: int, bare: bool) -> Figures:
        endpoint = f"POST {BARE_POST_PATH}" if bare else f"POST {SIGN_IN_PATH} (refused)"
        runs = tuple((r.bare if bare else r.blocked)[instance] for r in self.rounds)
        return Figures(FLOOD, f"instance {instance + 1}", endpoint, runs)


def _post_headers(app: AppProcess) -> dict[str, str]:
    """A same-origin fetch() of JSON: the Origin a browser sends."""
    return {"Content-Type": "application/json", "Origin": app.url}


def check_flood(apps: Sequence[AppProcess]) -> list[Check]:
    """The bare POST answers; the limit is shared; Valkey decides. Spends the limit on purpose.

    The checks' wrong-password attempts are the run's first: the first
    ``FLOOD_LIMIT`` reach the password check (401), alternating instances, and
    the next are refused (429) by either, so the flood that follows is
    refusals from its first request.
    """
    checks: list[Check] = []

    def add(n: int, question: str, expected: str, got: str) -> None:
        checks.append(Check(FLOOD, f"instance {n}", question, expected, got))

    for n, app in enumerate(apps, start=1):
        got = httpx.post(app.url + BARE_POST_PATH, content=FLOOD_BODY, headers=_post_headers(app))
        add(n, f"same-origin POST {BARE_POST_PATH}", OK_BODY, _answer(got))
        got = httpx.post(
            app.url + BARE_POST_PATH,
            content=FLOOD_BODY,
            headers={"Content-Type": "application/json"},
        )
        add(
            n,
            f"POST {BARE_POST_PATH} without Origin or Sec-Fetch-Site",
            "403",
            str(got.status_code),
        )
    for attempt in range(1, FLOOD_LIMIT + 1 + len(apps)):
        n = (attempt - 1) % len(apps) + 1
        app = apps[n - 1]
        got = httpx.post(
            app.url + SIGN_IN_PATH, content=FLOOD_BODY, headers=_post_headers(app), timeout=10
        )
        expected = "401" if attempt <= FLOOD_LIMIT else "429"
        add(n, f"wrong password, attempt {attempt} of the run", expected, str(got.status_code))
        if attempt > FLOOD_LIMIT:
            add(n, "a 429 carries Retry-After", "True", str("retry-after" in got.headers))
    for n, app in enumerate(apps, start=1):
        fallbacks = total(scrape(app.url), "bastion_rate_limit_fallbacks_total")
        add(n, "decisions taken by the local fallback so far", "0", f"{fallbacks:.0f}")
    return checks


def _at_once(
    apps: Sequence[AppProcess], path: str, seconds: int, scripts: Sequence[Path]
) -> tuple[WrkRun, ...]:
    """One wrk per instance, started together: one client's load spread over the instances."""
    with concurrent.futures.ThreadPoolExecutor(len(apps)) as pool:
        futures = [
            pool.submit(run_wrk, app.url + path, seconds, script, FLOOD_CONNECTIONS)
            for app, script in zip(apps, scripts, strict=True)
        ]
        return tuple(future.result() for future in futures)


def _settled(apps: Sequence[AppProcess]) -> list[Samples]:
    """Every instance's metrics, once the sign-ins still in flight have been answered.

    wrk stops with a request in flight on each connection. A refusal is
    answered in a moment, but an attempt that reached the password check
    takes a hash and two writes, which on a busy machine can be seconds:
    without this wait its 401 would be counted in the next round.
    """
    previous = -1
    deadline = time.monotonic() + SETTLE_MAX_S
    while True:
        time.sleep(SETTLE_S)
        samples = [scrape(app.url) for app in apps]
        answered = sum(_requests(s, route=SIGN_IN_PATH, method="POST") for s in samples)
        if answered == previous or time.monotonic() > deadline:
            return samples
        previous = answered


@dataclass(frozen=True)
class _Counts:
    """Sign-in answers and fallback decisions so far, both instances together."""

    reached: int
    refused: int
    fallbacks: int

    @classmethod
    def of(cls, samples: Sequence[Samples]) -> _Counts:
        route = {"route": SIGN_IN_PATH, "method": "POST"}
        return cls(
            sum(_requests(s, "401", **route) for s in samples),
            sum(_requests(s, "429", **route) for s in samples),
            round(sum(total(s, "bastion_rate_limit_fallbacks_total") for s in samples)),
        )


@dataclass(frozen=True)
class _FloodScripts:
    """Per instance, since each wrk sends its own instance's Origin (a same-origin fetch())."""

    blocked: tuple[Path, ...]
    bare: tuple[Path, ...]

    @classmethod
    def write(cls, apps: Sequence[AppProcess], directory: Path) -> _FloodScripts:
        def one(name: str, app: AppProcess) -> Path:
            text = static_script("POST", _post_headers(app), FLOOD_BODY)
            return _script(directory, f"{name}-{app.name}", text)

        return cls(
            tuple(one("flood-blocked", app) for app in apps),
            tuple(one("flood-bare", app) for app in apps),
        )


def _flood_rounds(
    apps: Sequence[AppProcess], options: Options, scripts: _FloodScripts, result: FloodResult
) -> float:
    """Warm-up, then the rounds; returns when (monotonic) the last flood ended."""
    if options.warmup > 0:
        _at_once(apps, SIGN_IN_PATH, options.warmup, scripts.blocked)
        _at_once(apps, BARE_POST_PATH, options.warmup, scripts.bare)
    before = _Counts.of(_settled(apps))
    result.reached_before = before.reached
    flood_ended = time.monotonic()
    for number in range(options.rounds):
        flood = _at_once(apps, SIGN_IN_PATH, result.seconds, scripts.blocked)
        flood_ended = time.monotonic()
        after = _Counts.of(_settled(apps))
        plain = _at_once(apps, BARE_POST_PATH, result.seconds, scripts.bare)
        result.rounds.append(
            FloodRound(
                flood,
                plain,
                reached=after.reached - before.reached,
                refused=after.refused - before.refused,
                fallbacks=after.fallbacks - before.fallbacks,
            )
        )
        before = after
        _say(f"  round {number + 1}/{options.rounds} done")
    return flood_ended


def _flood_totals(apps: Sequence[AppProcess], result: FloodResult) -> None:
    """The whole run's answers, from both instances' metrics, read before they stop."""
    samples = _settled(apps)
    answers: dict[str, int] = {}
    for s in samples:
        for (name, labels), value in s.items():
            tags = dict(labels)
            if name == "bastion_http_requests_total" and tags["route"] == SIGN_IN_PATH:
                answers[tags["status"]] = answers.get(tags["status"], 0) + round(value)
    result.answers = answers
    result.fallbacks = _Counts.of(samples).fallbacks
    result.server_errors = sum(_server_errors(s) for s in samples)
    for s in samples:
        result.lag = result.lag + LoopLag.of(s)


def _flood_audit(database_url: str, result: FloodResult) -> None:
    """After the graceful stop: what the audit log kept of the flood."""
    blocked = audit_rows(database_url, "auth.sign_in.blocked")
    result.blocked_rows = len(blocked)
    result.blocked_count = sum(int(row["details"]["count"]) for row in blocked)
    result.blocked_clients = tuple(sorted({str(row["client_ip"]) for row in blocked}))
    result.failed_rows = len(audit_rows(database_url, "auth.sign_in.failed"))


def _flood_problems(result: FloodResult, report: Report) -> None:
    """What no goal covers but makes the figures suspect: socket errors, a bare POST refused."""
    for item in (
        result.figures(i, bare) for i in range(result.instances) for bare in (False, True)
    ):
        if item.socket_errors:
            report.problems.append(
                f"{FLOOD}/{item.contender} {item.endpoint}: {item.socket_errors} socket errors"
            )
        if item.endpoint.endswith(BARE_POST_PATH) and item.non_2xx:
            report.problems.append(
                f"{FLOOD}/{item.contender} {item.endpoint}: {item.non_2xx} non-2xx responses"
            )
    if not result.graceful:
        report.problems.append(f"{FLOOD}: an instance did not stop cleanly {result.returncodes}")


def scenario_flood(options: Options, report: Report, tmp: Path, valkey_url: str) -> None:
    database_url = migrated_database(tmp, "flood")
    env = {
        "VALKEY_URL": _valkey_database(valkey_url, 1),
        "DATABASE_URL": database_url,
        "METRICS_ENABLED": "true",
        "SIGN_IN_RATE_LIMIT": f"{FLOOD_LIMIT}/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": FLOOD_ACCOUNT_LIMIT,
    }
    target = "bench.example_apps:example_with_bare_post"
    apps = [_example(f"flood-{n}", target, env) for n in (1, 2)]
    result = FloodResult(seconds=options.load_seconds)
    _say(f"{FLOOD}: starting {len(apps)} instances of the example app")
    with running(apps):
        first_attempt = time.monotonic()
        _require(check_flood(apps), report)
        scripts = _FloodScripts.write(apps, tmp)
        result.span_s = _flood_rounds(apps, options, scripts, result) - first_attempt
        _flood_totals(apps, result)
    result.returncodes = tuple(app.returncode for app in apps)
    _flood_audit(database_url, result)
    report.flood = result
    _flood_problems(result, report)


# --- scenario 7: cache under saturation -------------------------------------------------


@dataclass
class SaturationCell:
    """One connection count: its wrk runs, and the cache reads and loop lag during them."""

    connections: int
    runs: list[WrkRun] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    errors: int = 0
    lag: LoopLag = field(default_factory=LoopLag)

    @property
    def figures(self) -> Figures:
        return Figures(
            SATURATION, f"{self.connections} connections", f"GET {HOT_PATH}", tuple(self.runs)
        )

    @property
    def reads(self) -> int:
        return self.hits + self.misses

    @property
    def miss_share(self) -> float:
        return self.misses / self.reads if self.reads else 1.0

    @property
    def non_200(self) -> int:
        return sum(r.non_2xx + r.socket_errors for r in self.runs)

    def add(self, run: WrkRun, before: Samples, after: Samples) -> None:
        """One run, with the cache reads and lag samples the metrics gained during it."""

        def gained(result: str) -> int:
            name = "bastion_cache_operations_total"
            return round(total(after, name, result=result) - total(before, name, result=result))

        self.runs.append(run)
        self.hits += gained("hit")
        self.misses += gained("miss")
        self.errors += gained("error")
        self.lag = self.lag + (LoopLag.of(after) - LoopLag.of(before))


@dataclass
class SaturationResult:
    seconds: int
    cells: list[SaturationCell] = field(default_factory=list)
    #: The breaker's transition lines in the app's log, whole run.
    breaker_lines: list[str] = field(default_factory=list)
    #: ``bastion_cache_breaker_state{breaker="valkey"}`` after the last run (0 closed, 2 open).
    breaker_state: float = 0.0
    returncode: int | None = None

    @property
    def breaker_opened(self) -> int:
        return sum(1 for line in self.breaker_lines if line.rstrip().endswith("-> open"))


def check_saturation(app: AppProcess) -> list[Check]:
    """The key is stored and read back through the sandbox API; the breaker starts closed."""
    checks: list[Check] = []

    def add(question: str, expected: str, got: str) -> None:
        checks.append(Check(SATURATION, "example app", question, expected, got))

    def value(response: httpx.Response) -> str:
        body = response.json() if response.status_code == 200 else {}
        return f"{response.status_code} {body.get('value')!r}"

    expected = f"200 {HOT_VALUE!r}"
    stored = httpx.put(
        app.url + HOT_PATH,
        json={"value": HOT_VALUE, "ttl": HOT_TTL},
        headers={"Origin": app.url},
        timeout=10,
    )
    add(f"same-origin PUT {HOT_PATH}", expected, value(stored))
    add(f"GET {HOT_PATH}", expected, value(httpx.get(app.url + HOT_PATH, timeout=10)))
    samples = scrape(app.url)
    add(
        "cache hits counted",
        "True",
        str(total(samples, "bastion_cache_operations_total", result="hit") >= 1),
    )
    state = total(samples, "bastion_cache_breaker_state", breaker="valkey")
    add("valkey breaker state (0 closed)", "0", f"{state:.0f}")
    return checks


def _saturation_rounds(
    app: AppProcess, options: Options, script: Path, result: SaturationResult
) -> None:
    url = app.url + HOT_PATH
    if options.warmup > 0:
        for connections in SATURATION_CONNECTIONS:
            run_wrk(url, options.warmup, script, connections)
    cells = {c: SaturationCell(c) for c in SATURATION_CONNECTIONS}
    for number in range(options.rounds):
        for connections, cell in cells.items():
            before = scrape(app.url)
            run = run_wrk(url, result.seconds, script, connections)
            time.sleep(SETTLE_S)
            cell.add(run, before, scrape(app.url))
        _say(f"  round {number + 1}/{options.rounds} done")
    result.cells = list(cells.values())


def scenario_saturation(options: Options, report: Report, tmp: Path, valkey_url: str) -> None:
    env = {
        "VALKEY_URL": _valkey_database(valkey_url, 2),
        "DATABASE_URL": migrated_database(tmp, "saturation"),
        "METRICS_ENABLED": "true",
    }
    app = _example("saturation", "bastion_example:create_app", env, keep=(BREAKER_LINE,))
    result = SaturationResult(seconds=options.load_seconds)
    _say(f"{SATURATION}: starting the example app")
    with running([app]):
        _require(check_saturation(app), report)
        script = _script(tmp, "saturation", static_script("GET", {}))
        _saturation_rounds(app, options, script, result)
        result.breaker_state = total(
            scrape(app.url), "bastion_cache_breaker_state", breaker="valkey"
        )
    result.breaker_lines = app.kept_lines
    result.returncode = app.returncode
    report.saturation = result
    if result.returncode not in GRACEFUL:
        report.problems.append(f"{SATURATION}: the app did not stop cleanly ({result.returncode})")
