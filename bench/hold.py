"""Scenarios 6 and 7: the example app holding under load, read the way an operator reads it.

6. sign-in flood: one client IP floods the sign-in with a wrong password against
   two instances on one Valkey and one database, timed against a bare ``POST``
   of the same processes (:mod:`bench.example_apps`).
7. cache under saturation: one instance reads one stored key over 16 and 64
   connections; a late event loop must not turn hits into deadline misses.

Both read ``/api/metrics``, the app's log, and ``bastion audit --json``; what
must hold is the goals' rows in ``bench/RESULTS.md.j2``.
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from harness.metrics import LoopLag, Samples, by_label, scrape, total
from harness.servers import clean_env, run_cli, valkey_database
from harness.wrk import WrkRun, run_wrk, static_script

from bench.apps import APP_URL_VARIABLE
from bench.example_apps import BARE_POST_PATH
from bench.results import OK_BODY, Check, Context, answer, say, summary
from bench.servers import AppProcess, running

FLOOD, SATURATION = "sign-in flood", "cache saturation"
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
#: How long to wait at most for the sign-ins in flight to be answered (see ``settled``).
SETTLE_MAX_S = 15.0
SIGN_IN_ROUTE = {"route": SIGN_IN_PATH, "method": "POST"}


def audit_rows(database_url: str) -> list[dict[str, Any]]:
    """Every row ``bastion audit --json`` shows an operator (one command, filtered here)."""
    env = clean_env({"DATABASE_URL": database_url})
    done = run_cli("audit", "--json", "--limit", "10000", env=env)
    if done.returncode != 0:
        raise RuntimeError(f"bastion audit failed:\n{done.stderr}")
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def requests(samples: Samples, status: str | None = None) -> int:
    """Sign-in answers in ``bastion_http_requests_total``, of one status or all of them."""
    labels = {**SIGN_IN_ROUTE, **({"status": status} if status else {})}
    return round(total(samples, "bastion_http_requests_total", **labels))


def example(name: str, target: str, env: Mapping[str, str], keep: Sequence[str] = ()) -> AppProcess:
    return AppProcess(
        name,
        target,
        env=env,
        ready_path="/api/health/live",
        url_variables=(APP_URL_VARIABLE, "APP_URL"),
        keep_lines_with=keep,
    )


def post_headers(app: AppProcess) -> dict[str, str]:
    """A same-origin fetch() of JSON: the Origin a browser sends."""
    return {"Content-Type": "application/json", "Origin": app.url}


def check_flood(apps: Sequence[AppProcess]) -> list[Check]:
    """The bare POST answers; the limit is shared; Valkey decides. The checks' wrong passwords
    are the run's first and spend the limit, so the flood is refusals from its first request."""
    checks: list[Check] = []

    def add(n: int, question: str, expected: str, got: str) -> None:
        checks.append(Check(FLOOD, f"instance {n}", question, expected, got))

    for n, app in enumerate(apps, start=1):
        got = httpx.post(app.url + BARE_POST_PATH, content=FLOOD_BODY, headers=post_headers(app))
        add(n, f"same-origin POST {BARE_POST_PATH}", OK_BODY, answer(got))
        plain = {"Content-Type": "application/json"}
        got = httpx.post(app.url + BARE_POST_PATH, content=FLOOD_BODY, headers=plain)
        question = f"POST {BARE_POST_PATH} without Origin or Sec-Fetch-Site"
        add(n, question, "403", str(got.status_code))
    for attempt in range(1, FLOOD_LIMIT + 1 + len(apps)):
        n = (attempt - 1) % len(apps) + 1
        app = apps[n - 1]
        got = httpx.post(
            app.url + SIGN_IN_PATH, content=FLOOD_BODY, headers=post_headers(app), timeout=10
        )
        expected = "401" if attempt <= FLOOD_LIMIT else "429"
        add(n, f"wrong password, attempt {attempt} of the run", expected, str(got.status_code))
        if attempt > FLOOD_LIMIT:
            add(n, "a 429 carries Retry-After", "True", str("retry-after" in got.headers))
    for n, app in enumerate(apps, start=1):
        fallbacks = total(scrape(app.url), "bastion_rate_limit_fallbacks_total")
        add(n, "decisions taken by the local fallback so far", "0", f"{fallbacks:.0f}")
    return checks


def at_once(
    apps: Sequence[AppProcess], path: str, seconds: int, scripts: Sequence[Path]
) -> list[WrkRun]:
    """One wrk per instance, started together: one client's load spread over the instances."""
    with concurrent.futures.ThreadPoolExecutor(len(apps)) as pool:
        futures = [
            pool.submit(run_wrk, app.url + path, seconds, script, FLOOD_CONNECTIONS)
            for app, script in zip(apps, scripts, strict=True)
        ]
        return [future.result() for future in futures]


def settled(apps: Sequence[AppProcess]) -> list[Samples]:
    """Every instance's metrics once the sign-ins in flight are answered (a 401 takes a hash and
    two writes, seconds on a busy machine: without the wait it would count in the next round)."""
    previous = -1
    deadline = time.monotonic() + SETTLE_MAX_S
    while True:
        time.sleep(SETTLE_S)
        samples = [scrape(app.url) for app in apps]
        answered = sum(requests(s) for s in samples)
        if answered == previous or time.monotonic() > deadline:
            return samples
        previous = answered


def counts(samples: Sequence[Samples]) -> tuple[int, int, int]:
    """Sign-ins that reached the password check (401), refused (429), decided locally: so far."""
    return (
        sum(requests(s, "401") for s in samples),
        sum(requests(s, "429") for s in samples),
        round(sum(total(s, "bastion_rate_limit_fallbacks_total") for s in samples)),
    )


def flood_rounds(context: Context, apps: Sequence[AppProcess]) -> tuple[dict[str, Any], float]:
    """Warm-up, then rounds of flood and bare POST; the rounds, and when the last flood ended."""
    options = context.options
    # The same request to either path: each instance's own Origin, the same body.
    scripts = [
        context.script(f"flood-{app.name}", static_script("POST", post_headers(app), FLOOD_BODY))
        for app in apps
    ]
    if options.warmup > 0:
        at_once(apps, SIGN_IN_PATH, options.warmup, scripts)
        at_once(apps, BARE_POST_PATH, options.warmup, scripts)
    before = counts(settled(apps))
    result: dict[str, Any] = {"reached_before": before[0], "rounds": []}
    runs: dict[str, list[list[WrkRun]]] = {"blocked": [], "bare": []}
    ended = time.monotonic()
    for number in range(options.rounds):
        blocked = at_once(apps, SIGN_IN_PATH, options.load_seconds, scripts)
        ended = time.monotonic()
        after = counts(settled(apps))
        bare = at_once(apps, BARE_POST_PATH, options.load_seconds, scripts)
        runs["blocked"].append(blocked)
        runs["bare"].append(bare)
        gained = (a - b for a, b in zip(after, before, strict=True))
        row: dict[str, Any] = dict(zip(("reached", "refused", "fallbacks"), gained, strict=True))
        row.update(blocked_rps=[r.rps for r in blocked], bare_rps=[r.rps for r in bare])
        result["rounds"].append(row)
        before = after
        say(f"  round {number + 1}/{options.rounds} done")
    instances: list[dict[str, Any]] = []
    for i in range(len(apps)):
        ratios = [b[i].rps / p[i].rps for b, p in zip(runs["blocked"], runs["bare"], strict=True)]
        blocked, bare = ([r[i] for r in runs[kind]] for kind in ("blocked", "bare"))
        item = {"blocked": summary(blocked), "bare": summary(bare), "ratios": ratios}
        instances.append({**item, "ratio": statistics.median(ratios)})
    result["instances"] = instances
    result["ratio"] = statistics.median(r for item in instances for r in item["ratios"])
    return result, ended


def flood(context: Context) -> dict[str, Any]:
    database_url = context.database("flood")
    env = {
        "VALKEY_URL": valkey_database(context.valkey_url, 1),
        "DATABASE_URL": database_url,
        "METRICS_ENABLED": "true",
        "SIGN_IN_RATE_LIMIT": f"{FLOOD_LIMIT}/minute",
        "SIGN_IN_ACCOUNT_RATE_LIMIT": FLOOD_ACCOUNT_LIMIT,
    }
    target = "bench.example_apps:example_with_bare_post"
    apps = [example(f"flood-{n}", target, env) for n in (1, 2)]
    say(f"{FLOOD}: starting {len(apps)} instances of the example app")
    with running(apps):
        first_attempt = time.monotonic()
        context.require(check_flood(apps))
        result, ended = flood_rounds(context, apps)
        samples = settled(apps)
    answers: dict[str, int] = {}
    statuses: dict[str, float] = {}
    lag = LoopLag()
    for s in samples:
        for status, n in by_label(s, "bastion_http_requests_total", "status").items():
            statuses[status] = statuses.get(status, 0) + n
        mine = by_label(s, "bastion_http_requests_total", "status", route=SIGN_IN_PATH)
        answers |= {k: answers.get(k, 0) + round(v) for k, v in mine.items()}
        lag = lag + LoopLag.of(s)
    rows = audit_rows(database_url)
    blocked = [row for row in rows if row["action"] == "auth.sign_in.blocked"]
    returncodes = [app.returncode for app in apps]
    span = ended - first_attempt
    result.update(
        limit=FLOOD_LIMIT,
        window_s=FLOOD_WINDOW_S,
        account_limit=FLOOD_ACCOUNT_LIMIT,
        connections=FLOOD_CONNECTIONS,
        path=SIGN_IN_PATH,
        bare_path=BARE_POST_PATH,
        body=FLOOD_BODY,
        seconds=context.options.load_seconds,
        span_s=span,
        windows=max(1, math.ceil(span / FLOOD_WINDOW_S)),
        answers=answers,
        sign_ins=sum(answers.values()),
        fallbacks=counts(samples)[2],
        server_errors=round(sum(n for k, n in statuses.items() if k.startswith("5"))),
        lag=lag.data(),
        returncodes=returncodes,
        graceful=all(code in GRACEFUL for code in returncodes),
        blocked_rows=len(blocked),
        blocked_count=sum(int(row["details"]["count"]) for row in blocked),
        blocked_clients=sorted({str(row["client_ip"]) for row in blocked}),
        failed_rows=sum(1 for row in rows if row["action"] == "auth.sign_in.failed"),
    )
    for n, item in enumerate(result["instances"], start=1):
        errors = item["blocked"]["socket_errors"] + item["bare"]["socket_errors"]
        if errors or item["bare"]["non_2xx"]:
            context.problems.append(f"{FLOOD}/instance {n}: socket errors or a bare POST refused")
    if not result["graceful"]:
        context.problems.append(f"{FLOOD}: an instance did not stop cleanly {returncodes}")
    return result


def check_saturation(app: AppProcess) -> list[Check]:
    """The key is stored and read back through the sandbox API; the breaker starts closed."""
    checks: list[Check] = []

    def add(question: str, expected: str, got: str) -> None:
        checks.append(Check(SATURATION, "example app", question, expected, got))

    def value(response: httpx.Response) -> str:
        body = response.json() if response.status_code == 200 else {}
        return f"{response.status_code} {body.get('value')!r}"

    expected = f"200 {HOT_VALUE!r}"
    body = {"value": HOT_VALUE, "ttl": HOT_TTL}
    stored = httpx.put(app.url + HOT_PATH, json=body, headers={"Origin": app.url}, timeout=10)
    add(f"same-origin PUT {HOT_PATH}", expected, value(stored))
    add(f"GET {HOT_PATH}", expected, value(httpx.get(app.url + HOT_PATH, timeout=10)))
    samples = scrape(app.url)
    hits = total(samples, "bastion_cache_operations_total", result="hit")
    add("cache hits counted", "True", str(hits >= 1))
    state = total(samples, "bastion_cache_breaker_state", breaker="valkey")
    add("valkey breaker state (0 closed)", "0", f"{state:.0f}")
    return checks


def saturation(context: Context) -> dict[str, Any]:
    options = context.options
    env = {
        "VALKEY_URL": valkey_database(context.valkey_url, 2),
        "DATABASE_URL": context.database("saturation"),
        "METRICS_ENABLED": "true",
    }
    app = example("saturation", "bastion_example:create_app", env, keep=(BREAKER_LINE,))
    gained: dict[int, dict[str, Any]] = {
        c: {"runs": [], "lag": LoopLag()} for c in SATURATION_CONNECTIONS
    }
    say(f"{SATURATION}: starting the example app")
    with running([app]):
        context.require(check_saturation(app))
        script = context.script("saturation", static_script("GET", {}))
        url = app.url + HOT_PATH
        for connections in SATURATION_CONNECTIONS if options.warmup > 0 else ():
            run_wrk(url, options.warmup, script, connections)
        for number in range(options.rounds):
            for connections, cell in gained.items():
                before = scrape(app.url)
                cell["runs"].append(run_wrk(url, options.load_seconds, script, connections))
                time.sleep(SETTLE_S)
                after = scrape(app.url)
                for result in ("hit", "miss", "error"):
                    name = "bastion_cache_operations_total"
                    change = total(after, name, result=result) - total(before, name, result=result)
                    cell[result] = cell.get(result, 0) + round(change)
                cell["lag"] = cell["lag"] + (LoopLag.of(after) - LoopLag.of(before))
            say(f"  round {number + 1}/{options.rounds} done")
        state = total(scrape(app.url), "bastion_cache_breaker_state", breaker="valkey")
    cells = [
        {
            "connections": connections,
            "figures": summary(cell["runs"]),
            "hits": cell["hit"],
            "misses": cell["miss"],
            "errors": cell["error"],
            "reads": cell["hit"] + cell["miss"],
            "non_200": sum(r.non_2xx + r.socket_errors for r in cell["runs"]),
            "lag": cell["lag"].data(),
        }
        for connections, cell in gained.items()
    ]
    if app.returncode not in GRACEFUL:
        context.problems.append(f"{SATURATION}: the app did not stop cleanly ({app.returncode})")
    return {
        "path": HOT_PATH,
        "stored": {"value": HOT_VALUE, "ttl": HOT_TTL},
        "seconds": options.load_seconds,
        "cells": cells,
        "requests": sum(cell["figures"]["requests"] for cell in cells),
        "breaker_lines": app.kept_lines,
        "breaker_opened": sum(1 for line in app.kept_lines if line.rstrip().endswith("-> open")),
        "breaker_state": state,
        "returncode": app.returncode,
    }
