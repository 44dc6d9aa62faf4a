"""``python -m bench``: every contender and scenario side by side, in one run, into RESULTS.md.

Scenarios, each with its contenders started at once and measured in
interleaved rounds (A B C ..., A B C ..., medians), so that a noisy neighbour
slows every contender of a scenario alike:

1. plain: ``GET /json`` and a same-origin ``POST /submit`` against bare
   Starlette (also with the envelope's response headers and no logic),
   Starlette behind ``protect()`` (also without metrics, and with
   production's JSON access log), FastAPI behind ``protect()``, Django,
   Litestar, and ``protect()`` under granian instead of uvicorn (with
   granian's defaults, and with ``--backpressure 8``).
2. sign-in: counting attempts in Valkey (bastion, slowapi, Litestar) against
   the same endpoint without a limiter.
3. cache: ``cache_get`` against a raw valkey-py ``GET``, in-process.
4. degraded: a cache-reading endpoint behind the envelope with Valkey
   healthy, refusing connections, and hung; the first requests (before the
   breaker opens) from a small client, then steady state under wrk.
5. in-process: the envelope's layers called without a server.
6. sign-in flood: one client IP against two instances of the example app on
   one Valkey and one database; refused sign-ins against a bare POST of the
   same processes, and what reached the password check and the audit log.
7. cache saturation: the example app reading one stored key over 16 and 64
   connections: hits, breaker, answers and event-loop lag.

Before anything is timed, every contender is asked the questions its figures
rely on (status codes, bodies, refusals, counts in Valkey); a wrong answer
stops the run, because a benchmark of an envelope that refuses the POST, or of
a limiter that counts nothing, would measure the wrong thing.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import httpx
import valkey

from bench import cache_overhead
from bench.apps import CACHED_KEY, VALKEY_URL_VARIABLE
from bench.servers import ROOT, AppProcess, running
from bench.signin_apps import DEADLINE_VARIABLE, RATE_LIMIT_VARIABLE
from bench.wrk import WrkRun, find_wrk, run_wrk, signin_script, static_script

if TYPE_CHECKING:
    from bench.hold import FloodResult, SaturationResult

__all__ = [
    "Check",
    "Figures",
    "Options",
    "Report",
    "main",
    "run",
]

POST_BODY = '{"note": "bench"}'
RESULTS = ROOT / "bench" / "RESULTS.md"
#: Client identities the sign-in load spreads over (see ``bench.signin_apps``).
IDENTITIES = 4096
RATE_LIMIT = "10000/minute"
#: bastion's default CACHE_COMMAND_TIMEOUT_MS, in ms: a request that waited this
#: long on the cache paid a whole deadline.
CACHE_DEADLINE_MS = 50.0


# --- results ------------------------------------------------------------------------


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
class Figures:
    """One contender on one request: every round's run, and their medians."""

    scenario: str
    contender: str
    endpoint: str
    runs: tuple[WrkRun, ...]

    def _median(self, pick: Callable[[WrkRun], float]) -> float:
        return statistics.median(pick(r) for r in self.runs)

    @property
    def rps(self) -> float:
        return self._median(lambda r: r.rps)

    @property
    def p50_ms(self) -> float:
        return self._median(lambda r: r.p50_ms)

    @property
    def p99_ms(self) -> float:
        return self._median(lambda r: r.p99_ms)

    @property
    def p999_ms(self) -> float:
        return self._median(lambda r: r.p999_ms)

    @property
    def max_ms(self) -> float:
        return max(r.max_ms for r in self.runs)

    @property
    def non_2xx(self) -> int:
        return sum(r.non_2xx for r in self.runs)

    @property
    def socket_errors(self) -> int:
        return sum(r.socket_errors for r in self.runs)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.runs)


@dataclass(frozen=True)
class FirstRequests:
    """Sequential requests to a freshly started app: what callers pay before the breaker opens."""

    contender: str
    latencies_ms: tuple[float, ...]

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    @property
    def waited(self) -> int:
        """How many waited at least most of a cache deadline."""
        return sum(1 for ms in self.latencies_ms if ms >= 0.8 * CACHE_DEADLINE_MS)


@dataclass
class Report:
    options: Options
    argv: tuple[str, ...]
    started: dt.datetime
    finished: dt.datetime | None = None
    checks: list[Check] = field(default_factory=list)
    figures: list[Figures] = field(default_factory=list)
    first_requests: list[FirstRequests] = field(default_factory=list)
    cache: cache_overhead.Result | None = None
    inprocess: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    #: µs per call of each piece of protect()'s one pass (bench.inprocess's ``parts``).
    inprocess_parts: dict[str, float] = field(default_factory=dict)
    #: Per bastion sign-in contender: decisions taken, and how many by the local fallback.
    signin_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Per degraded contender: cache hits, misses, errors and breaker transitions, whole run.
    degraded_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    flood: FloodResult | None = None
    saturation: SaturationResult | None = None
    load: list[tuple[str, tuple[float, float, float]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def get(self, scenario: str, contender: str, endpoint: str) -> Figures:
        for item in self.figures:
            if (item.scenario, item.contender, item.endpoint) == (scenario, contender, endpoint):
                return item
        raise KeyError((scenario, contender, endpoint))

    def has(self, scenario: str, contender: str, endpoint: str) -> bool:
        try:
            self.get(scenario, contender, endpoint)
        except KeyError:
            return False
        return True

    def ratio(self, scenario: str, endpoint: str, numerator: str, denominator: str) -> float:
        """Median over rounds of the paired ratio of req/s (each pair ran in the same round)."""
        top = self.get(scenario, numerator, endpoint).runs
        bottom = self.get(scenario, denominator, endpoint).runs
        return statistics.median(a.rps / b.rps for a, b in zip(top, bottom, strict=True))

    def ratio_range(
        self, scenario: str, endpoint: str, numerator: str, denominator: str
    ) -> tuple[float, float]:
        top = self.get(scenario, numerator, endpoint).runs
        bottom = self.get(scenario, denominator, endpoint).runs
        ratios = [a.rps / b.rps for a, b in zip(top, bottom, strict=True)]
        return min(ratios), max(ratios)


# --- contenders -------------------------------------------------------------------


@dataclass
class Contender:
    """A server process plus what the harness must know to talk to it like a browser."""

    key: str
    label: str
    app: AppProcess
    #: "none" (bare), "envelope" (bastion: Origin / Sec-Fetch-Site), "django", "litestar" (tokens)
    protection: str
    #: Cookie (and token header for unsafe requests), filled in by ``bootstrap``.
    session: dict[str, str] = field(default_factory=dict)
    token: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.app.url

    def bootstrap(self) -> None:
        """Get a CSRF token the way a browser gets one, once, from the running server.

        Django: ``GET /csrf`` runs ``get_token``, which sets the ``csrftoken``
        cookie (the secret) and returns the masked token for ``X-CSRFToken``.
        Litestar: any GET without the cookie sets ``csrftoken``; the same value
        goes back in ``x-csrftoken``. bastion needs neither: it reads the
        ``Origin`` and ``Sec-Fetch-Site`` a browser sends anyway.
        """
        if self.protection == "django":
            response = httpx.get(self.url + "/csrf", timeout=5)
            cookie = response.cookies["csrftoken"]
            self.session = {"Cookie": f"csrftoken={cookie}"}
            self.token = {"X-CSRFToken": str(response.json()["token"])}
        elif self.protection == "litestar":
            response = httpx.get(self.url + "/json", timeout=5)
            cookie = response.cookies["csrftoken"]
            self.session = {"Cookie": f"csrftoken={cookie}"}
            self.token = {"x-csrftoken": cookie}

    def get_headers(self) -> dict[str, str]:
        """A returning browser's GET: its cookie, if the contender gave it one."""
        return dict(self.session)

    def post_headers(self) -> dict[str, str]:
        """A same-origin fetch() POST of JSON, with whatever token the contender demands."""
        return {
            "Content-Type": "application/json",
            "Origin": self.url,
            "Sec-Fetch-Site": "same-origin",
            **self.session,
            **self.token,
        }


def _answer(response: httpx.Response) -> str:
    try:
        body: object = response.json()
    except ValueError:
        body = response.text[:80]
    return f"{response.status_code} {body!r}"


OK_BODY = "200 {'ok': True}"


def check_plain(contender: Contender) -> list[Check]:
    """Answers, headers and refusals, per contender; the bare app must refuse nothing."""
    name = contender.key
    # "headers": the bare app sending the envelope's response headers, refusing nothing.
    carries_headers = contender.protection != "none"
    protected = contender.protection not in ("none", "headers")
    checks: list[Check] = []

    def add(question: str, expected: str, got: str) -> None:
        checks.append(Check("plain", name, question, expected, got))

    with httpx.Client(base_url=contender.url, timeout=5.0) as client:
        got = client.get("/json", headers=contender.get_headers())
        add("GET /json", OK_BODY, _answer(got))
        add(
            "GET /json carries X-Content-Type-Options: nosniff",
            str(carries_headers),
            str(got.headers.get("x-content-type-options") == "nosniff"),
        )
        got = client.post("/submit", content=POST_BODY, headers=contender.post_headers())
        add("same-origin POST /submit", OK_BODY, _answer(got))
        # A forged request: the browser attaches the cookie, but the attacker's
        # page can neither read the token nor make the browser omit every
        # origin header; the harshest case for header-based CSRF is none sent.
        got = client.post(
            "/submit",
            content=POST_BODY,
            headers={"Content-Type": "application/json", **contender.session},
        )
        add(
            "POST /submit without Origin, Sec-Fetch-Site, Referer or token",
            "403" if protected else "200",
            str(got.status_code),
        )
        if contender.protection in ("envelope", "django"):
            got = client.post(
                "/submit",
                content=POST_BODY,
                headers={
                    **contender.post_headers(),
                    "Origin": "https://evil.example",
                    "Sec-Fetch-Site": "cross-site",
                },
            )
            add(
                "cross-site POST /submit (Origin https://evil.example)", "403", str(got.status_code)
            )
        got = client.get("/json", headers={**contender.get_headers(), "Host": "evil.example"})
        add(
            "GET /json with Host: evil.example", "400" if protected else "200", str(got.status_code)
        )
        if contender.key == "envelope-log":
            got = client.get("/json", headers=contender.get_headers())
            add(
                "GET /json writes its JSON access line (route, status, request id)",
                "True",
                str(_access_line_written(contender.app, got.headers.get("x-request-id", "?"))),
            )
    return checks


def _access_line_written(app: AppProcess, request_id: str, timeout: float = 5.0) -> bool:
    """Is there one JSON line on ``bastion.access`` for ``request_id`` in the server's output?"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in app.lines_with([request_id]):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("logger") == "bastion.access" and entry.get("route") == "/json":
                return bool(entry.get("status") == 200)
        time.sleep(0.05)
    return False


# --- the runner ---------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One contender on one request: what wrk runs in every round."""

    scenario: str
    contender: str
    endpoint: str
    url: str
    script: Path


def measure_cells(
    cells: Sequence[Cell], options: Options, report: Report, warmup: int | None = None
) -> None:
    """Warm every cell once, then run rounds of every cell in order; keep every run."""
    warm = options.warmup if warmup is None else warmup
    if warm > 0:
        for cell in cells:
            run_wrk(cell.url, warm, cell.script)
    runs: dict[Cell, list[WrkRun]] = {cell: [] for cell in cells}
    for number in range(options.rounds):
        for cell in cells:
            runs[cell].append(run_wrk(cell.url, options.seconds, cell.script))
        _say(f"  round {number + 1}/{options.rounds} done")
    for cell, cell_runs in runs.items():
        figures = Figures(cell.scenario, cell.contender, cell.endpoint, tuple(cell_runs))
        report.figures.append(figures)
        if figures.non_2xx or figures.socket_errors:
            report.problems.append(
                f"{cell.scenario}/{cell.contender} {cell.endpoint}: {figures.non_2xx} non-2xx "
                f"responses, {figures.socket_errors} socket errors under load"
            )


def _require(checks: Sequence[Check], report: Report) -> None:
    report.checks.extend(checks)
    failed = [c for c in checks if not c.ok]
    if failed:
        raise RuntimeError(
            "contenders answered wrongly, nothing measured:\n"
            + "\n".join(
                f"  {c.scenario}/{c.contender}: {c.question}: expected {c.expected}, got {c.got}"
                for c in failed
            )
        )


def _script(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.lua"
    path.write_text(text)
    return path


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- scenario 1: plain requests --------------------------------------------------------


#: Requests granian lets into the Python app at once in the ``envelope-granian-bp``
#: contender (its default is the backlog, 1024; see RESULTS.md, the server section).
GRANIAN_BACKPRESSURE = 8


def plain_contenders(baseline: Path | None) -> list[Contender]:
    contenders = [
        Contender("bare", "bare Starlette", AppProcess("bare", "bench.apps:bare_app"), "none"),
        Contender(
            "headers",
            "bare Starlette + the envelope's response headers",
            AppProcess("headers", "bench.apps:headers_app"),
            "headers",
        ),
        Contender(
            "envelope",
            "Starlette + bastion protect()",
            AppProcess("envelope", "bench.apps:protected_app"),
            "envelope",
        ),
        Contender(
            "envelope-nometrics",
            "Starlette + bastion protect(), no metrics",
            AppProcess("envelope-nometrics", "bench.apps:protected_nometrics_app"),
            "envelope",
        ),
        Contender(
            "envelope-log",
            "Starlette + bastion protect() + production logging",
            AppProcess("envelope-log", "bench.apps:protected_logging_app"),
            "envelope",
        ),
        Contender(
            "fastapi",
            "FastAPI + bastion protect()",
            AppProcess("fastapi", "bench.apps:fastapi_app"),
            "envelope",
        ),
        Contender(
            "django", "Django (ASGI)", AppProcess("django", "bench.apps:django_app"), "django"
        ),
        Contender(
            "litestar",
            "Litestar (CSRF, hosts, rate limit)",
            AppProcess("litestar", "bench.apps:litestar_app"),
            "litestar",
        ),
        Contender(
            "bare-granian",
            "bare Starlette on granian",
            AppProcess("bare-granian", "bench.apps:bare_app", server="granian"),
            "none",
        ),
        Contender(
            "envelope-granian",
            "Starlette + bastion protect() on granian",
            AppProcess("envelope-granian", "bench.apps:protected_app", server="granian"),
            "envelope",
        ),
        Contender(
            "envelope-granian-bp",
            f"Starlette + bastion protect() on granian, --backpressure {GRANIAN_BACKPRESSURE}",
            AppProcess(
                "envelope-granian-bp",
                "bench.apps:protected_app",
                server="granian",
                server_flags=("--backpressure", str(GRANIAN_BACKPRESSURE)),
            ),
            "envelope",
        ),
    ]
    if baseline is not None:
        contenders.append(
            Contender(
                "envelope-before",
                f"Starlette + bastion protect(), bastion from {baseline}",
                AppProcess(
                    "envelope-before", "bench.apps:protected_app", python_path=[str(baseline)]
                ),
                "envelope",
            )
        )
    return contenders


def scenario_plain(options: Options, report: Report, tmp: Path) -> None:
    contenders = plain_contenders(options.baseline)
    if options.contenders:
        keep = {*options.contenders, "envelope-before"}  # --baseline asks for it explicitly
        contenders = [c for c in contenders if c.key in keep]
    _say(f"plain: starting {len(contenders)} servers")
    with running([c.app for c in contenders]):
        for contender in contenders:
            contender.bootstrap()
            _require(check_plain(contender), report)
        cells: list[Cell] = []
        for endpoint in ("GET /json", "POST /submit"):
            for c in contenders:
                if endpoint.startswith("GET"):
                    script = static_script("GET", c.get_headers())
                    url = c.url + "/json"
                else:
                    script = static_script("POST", c.post_headers(), POST_BODY)
                    url = c.url + "/submit"
                name = f"plain-{c.key}-{endpoint.split()[0].lower()}"
                cells.append(Cell("plain", c.key, endpoint, url, _script(tmp, name, script)))
        measure_cells(cells, options, report)


# --- scenario 2: sign-in rate limits --------------------------------------------------


SIGNIN_CONTENDERS: Mapping[str, tuple[str, str, bool]] = {
    # key: (label, factory, counts in Valkey)
    "starlette-unlimited": ("Starlette, no limiter", "starlette_unlimited_app", False),
    "bastion": ("Starlette + bastion SignInLimiter", "bastion_signin_app", True),
    "bastion-1s": ("the same, 1 s deadline", "bastion_signin_app", True),
    "slowapi": ("Starlette + slowapi", "slowapi_signin_app", True),
    "litestar-unlimited": ("Litestar, no limiter", "litestar_unlimited_app", False),
    "litestar": ("Litestar + RateLimitConfig", "litestar_signin_app", True),
}


def counted(client: valkey.Valkey, ip: str) -> int:
    """Attempts recorded in Valkey for ``ip``, whatever the limiter's key and format.

    A moving window is a list of timestamps (slowapi) or a sorted set of them
    (bastion); Litestar keeps a JSON object whose ``history`` lists them; a
    fixed window is an integer.
    """
    total = 0
    # valkey-py types its synchronous replies as "value or awaitable"; this client is sync.
    for key in client.scan_iter(match=f"*{ip}*"):
        kind = client.type(key)
        if kind in (b"list", "list"):
            total += cast("int", client.llen(key))
            continue
        if kind in (b"zset", "zset"):
            total += cast("int", client.zcard(key))
            continue
        raw = cast("bytes | None", client.get(key))
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        total += len(value["history"]) if isinstance(value, dict) else int(value)
    return total


def check_signin(key: str, app: AppProcess, limited: bool, valkey_url: str, n: int) -> list[Check]:
    ip = f"198.51.100.{n}"
    checks: list[Check] = []
    with httpx.Client(base_url=app.url, timeout=5.0) as client:
        for attempt in range(3):
            got = client.post(
                "/sign-in",
                json={"email": f"check{n}@example.com", "password": "x"},
                headers={"X-Forwarded-For": ip},
            )
            checks.append(
                Check(
                    "sign-in", key, f"POST /sign-in, attempt {attempt + 1}", OK_BODY, _answer(got)
                )
            )
    with valkey.Valkey.from_url(valkey_url) as raw:
        checks.append(
            Check(
                "sign-in",
                key,
                f"attempts counted in Valkey for {ip} after 3 sign-ins",
                "3" if limited else "0",
                str(counted(raw, ip)),
            )
        )
    return checks


def scenario_signin(options: Options, report: Report, tmp: Path, valkey_url: str) -> None:
    env = {VALKEY_URL_VARIABLE: valkey_url, RATE_LIMIT_VARIABLE: RATE_LIMIT}
    # "bastion-1s" is the same limiter with a deadline no stall on a shared machine
    # reaches, so that its figures are of counting in Valkey, never of the fallback.
    apps = {
        key: AppProcess(
            f"signin-{key}",
            f"bench.signin_apps:{factory}",
            env={**env, DEADLINE_VARIABLE: "1000"} if key == "bastion-1s" else env,
        )
        for key, (_, factory, _) in SIGNIN_CONTENDERS.items()
    }
    _say(f"sign-in: starting {len(apps)} servers")
    with running(list(apps.values())):
        for n, (key, app) in enumerate(apps.items(), start=1):
            _require(check_signin(key, app, SIGNIN_CONTENDERS[key][2], valkey_url, n), report)
        headers = {"Content-Type": "application/json", "Origin": "http://127.0.0.1"}
        script = _script(tmp, "signin", signin_script("/sign-in", headers, IDENTITIES))
        cells = [
            Cell("sign-in", key, "POST /sign-in", app.url + "/sign-in", script)
            for key, app in apps.items()
        ]
        measure_cells(cells, options, report)
        # Reported, not a failure: under a saturating load the 50 ms deadline can
        # pass while a request waits for the event loop, and the local fallback
        # deciding instead is the limiter's declared behaviour.
        for key in ("bastion", "bastion-1s"):
            stats = httpx.get(apps[key].url + "/stats", timeout=5).json()
            report.signin_stats[key] = {k: int(v) for k, v in stats.items()}


# --- scenario 4: degraded cache ---------------------------------------------------------


def first_requests(app: AppProcess, count: int) -> list[float]:
    """``count`` sequential ``GET /cached`` on one keep-alive connection, in ms each."""
    latencies: list[float] = []
    with httpx.Client(base_url=app.url, timeout=5.0) as client:
        for _ in range(count):
            start = time.perf_counter()
            response = client.get("/cached")
            latencies.append((time.perf_counter() - start) * 1e3)
            if response.status_code != 200:
                raise RuntimeError(f"{app.name}: GET /cached answered {_answer(response)}")
    return latencies


def scenario_degraded(options: Options, report: Report, tmp: Path, valkey_url: str) -> None:
    from tests.support.servers import HungServer, refused_url

    with valkey.Valkey.from_url(valkey_url) as raw:
        raw.set(f"bastion:{CACHED_KEY}", b'{"v":1}')
    with HungServer() as hung:
        # "off": the same app without a cache at all, the floor an open breaker approaches.
        targets = {
            "healthy": valkey_url,
            "refused": refused_url(),
            "hung": hung.url,
            "off": "",
        }
        apps = {
            key: AppProcess(f"cache-{key}", "bench.apps:cached_app", env={VALKEY_URL_VARIABLE: url})
            for key, url in targets.items()
        }
        _say(f"degraded: starting {len(apps)} servers")
        with running(list(apps.values())):
            # Fresh processes, breaker closed: nothing has touched the cache yet.
            for key, app in apps.items():
                latencies = first_requests(app, options.first_requests)
                report.first_requests.append(FirstRequests(key, tuple(latencies)))
            checks: list[Check] = []
            for key, app in apps.items():
                got = httpx.get(app.url + "/cached", timeout=5)
                expected = "200 {'hit': True}" if key == "healthy" else "200 {'hit': False}"
                checks.append(Check("degraded", key, "GET /cached", expected, _answer(got)))
                checks.append(
                    Check(
                        "degraded",
                        key,
                        "GET /cached carries the envelope's headers",
                        "nosniff",
                        str(got.headers.get("x-content-type-options")),
                    )
                )
            _require(checks, report)
            script = _script(tmp, "cached", static_script("GET", {}))
            cells = [
                Cell("degraded", key, "GET /cached", app.url + "/cached", script)
                for key, app in apps.items()
            ]
            # At least a second of warm-up (unless --quick), so that the steady
            # state is measured with the breaker already open.
            warmup = options.warmup if options.quick else max(1, options.warmup)
            measure_cells(cells, options, report, warmup=warmup)
            for key, app in apps.items():
                stats = httpx.get(app.url + "/stats", timeout=5).json()
                report.degraded_stats[key] = {k: int(v) for k, v in stats.items()}


# --- scenario 5: in-process layers ------------------------------------------------------


def inprocess(options: Options, python_path: Path | None) -> dict[str, dict[str, float]]:
    """``bench.inprocess`` in a fresh interpreter, optionally on another bastion's sources."""
    import os

    paths = [str(python_path)] if python_path is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)])}
    rounds, count = (3, 300) if options.quick else (30, 1000)
    done = subprocess.run(
        [sys.executable, "-m", "bench.inprocess", "--rounds", str(rounds), "--count", str(count)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.inprocess failed:\n{done.stderr}")
    result: dict[str, dict[str, float]] = json.loads(done.stdout)
    return result


def scenario_inprocess(options: Options, report: Report) -> None:
    _say("in-process: measuring layers")
    versions: list[tuple[str, Path | None]] = [("current", None)]
    if options.baseline is not None:
        versions.append(("before", options.baseline))
    samples: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name, _ in versions}
    # Alternate the processes too, so that the before/after pair shares the noise.
    for _ in range(1 if options.quick else 3):
        for name, path in versions:
            samples[name].append(inprocess(options, path))
    for name, runs in samples.items():
        parts = [run.pop("parts") for run in runs if "parts" in run]
        if name == "current" and parts:
            report.inprocess_parts = {
                piece: statistics.median(p[piece] for p in parts) for piece in parts[0]
            }
        report.inprocess[name] = {
            endpoint: {
                layer: statistics.median(run[endpoint][layer] for run in runs)
                for layer in runs[0][endpoint]
            }
            for endpoint in runs[0]
        }


# --- the run ------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    rounds: int
    seconds: int
    warmup: int
    quick: bool
    scenarios: tuple[str, ...]
    output: Path | None
    baseline: Path | None
    #: Plain-scenario contenders to run (empty: all of them).
    contenders: tuple[str, ...]
    cache_rounds: int
    cache_ops: int
    first_requests: int
    #: Length of one wrk run in the sign-in flood and cache saturation scenarios.
    load_seconds: int = 20


SCENARIOS = (
    "plain",
    "sign-in",
    "cache",
    "degraded",
    "in-process",
    "sign-in-flood",
    "cache-saturation",
)
PLAIN_KEYS = (
    "bare",
    "headers",
    "envelope",
    "envelope-nometrics",
    "envelope-log",
    "fastapi",
    "django",
    "litestar",
    "bare-granian",
    "envelope-granian",
    "envelope-granian-bp",
)


def _load() -> tuple[float, float, float]:
    import os

    return os.getloadavg()


@contextlib.contextmanager
def _valkey() -> Iterator[str]:
    from tests.support.servers import ValkeyServer

    server = ValkeyServer().start()
    try:
        yield server.url
    finally:
        server.close()


def run(options: Options, argv: Sequence[str] = ()) -> Report:
    find_wrk()
    report = Report(options=options, argv=tuple(argv), started=dt.datetime.now(dt.UTC))
    report.load.append(("start", _load()))
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp, _valkey() as valkey_url:
        directory = Path(tmp)
        if "plain" in options.scenarios:
            scenario_plain(options, report, directory)
            report.load.append(("after plain", _load()))
        if "sign-in" in options.scenarios:
            scenario_signin(options, report, directory, valkey_url)
            report.load.append(("after sign-in", _load()))
        if "cache" in options.scenarios:
            _say("cache: cache_get against a raw GET")
            report.cache = cache_overhead.run(valkey_url, options.cache_rounds, options.cache_ops)
            if report.cache.misses:
                report.problems.append(f"cache: {report.cache.misses} wrapped reads missed")
        if "degraded" in options.scenarios:
            scenario_degraded(options, report, directory, valkey_url)
            report.load.append(("after degraded", _load()))
        if "in-process" in options.scenarios:
            scenario_inprocess(options, report)
        _hold_under_load(options, report, directory, valkey_url)
    report.finished = dt.datetime.now(dt.UTC)
    return report


def _hold_under_load(options: Options, report: Report, directory: Path, valkey_url: str) -> None:
    """Scenarios 6 and 7 (``bench.hold``, which builds on this module, hence imported here)."""
    from bench import hold

    if "sign-in-flood" in options.scenarios:
        hold.scenario_flood(options, report, directory, valkey_url)
        report.load.append(("after sign-in flood", _load()))
    if "cache-saturation" in options.scenarios:
        hold.scenario_saturation(options, report, directory, valkey_url)
        report.load.append(("after cache saturation", _load()))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text}")
    return value


def parse_options(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--rounds", type=_positive, default=5, help="rounds per contender")
    # wrk takes whole seconds only.
    parser.add_argument("--seconds", type=_positive, default=5, help="length of one wrk run")
    parser.add_argument(
        "--load-seconds",
        type=_positive,
        default=20,
        help="length of one wrk run in the sign-in-flood and cache-saturation scenarios",
    )
    parser.add_argument(
        "--warmup", type=_not_negative, default=2, help="untimed seconds per cell before round 1"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about a second per contender: checks that everything runs, figures mean nothing",
    )
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run only this scenario (repeatable)"
    )
    parser.add_argument(
        "--contender",
        action="append",
        choices=PLAIN_KEYS,
        help="run only this contender of the plain scenario (repeatable; keep bare for ratios)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"where to write the report, - for stdout (default {RESULTS.relative_to(ROOT)}; "
        "stdout with --quick)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="another bastion's src/ (e.g. a git worktree of an older commit): adds it as a "
        "contender to the plain and in-process scenarios, for before/after figures",
    )
    args = parser.parse_args(list(argv))
    quick: bool = args.quick
    output: Path | None = args.output
    if output is None and not quick:
        output = RESULTS
    baseline: Path | None = args.baseline.resolve() if args.baseline is not None else None
    if baseline is not None and not (baseline / "bastion" / "stack.py").is_file():
        parser.error(f"--baseline {baseline}: expected a src/ directory holding bastion/")
    return Options(
        rounds=1 if quick else args.rounds,
        seconds=1 if quick else args.seconds,
        warmup=0 if quick else args.warmup,
        quick=quick,
        scenarios=tuple(args.only or SCENARIOS),
        output=output,
        baseline=baseline,
        contenders=tuple(args.contender or ()),
        cache_rounds=2 if quick else 30,
        cache_ops=50 if quick else 1000,
        first_requests=10 if quick else 20,
        load_seconds=1 if quick else args.load_seconds,
    )


def main(argv: Sequence[str] | None = None) -> Report:
    from bench.report import render

    arguments = list(sys.argv[1:] if argv is None else argv)
    options = parse_options(arguments)
    report = run(options, arguments)
    text = render(report)
    if options.output is not None and str(options.output) != "-":
        options.output.write_text(text)
        _say(f"wrote {options.output}")
    else:
        print(text)
    for problem in report.problems:
        _say(f"PROBLEM: {problem}")
    return report
