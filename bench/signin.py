"""Scenarios 2 and 4: counting sign-ins in Valkey, and a cache-reading endpoint on a sick Valkey.

Sign-in: bastion, slowapi and Litestar counting in one Valkey, each against the
same framework without a limiter. Degraded: ``GET /cached`` behind
``protect()`` with Valkey healthy, refusing, hung and absent.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, cast

import httpx
import valkey
from harness.servers import HungServer, refused_url
from harness.wrk import signin_script, static_script

from bench.apps import CACHED_KEY, VALKEY_URL_VARIABLE
from bench.results import OK_BODY, Cell, Check, Context, answer, measure, paired, say, summary
from bench.servers import AppProcess, running
from bench.signin_apps import DEADLINE_VARIABLE, RATE_LIMIT_VARIABLE

#: Client identities the sign-in load spreads over (see ``bench.signin_apps``).
IDENTITIES = 4096
RATE_LIMIT = "10000/minute"
#: key: (factory in bench.signin_apps, counts in Valkey, its no-limiter baseline).
SIGN_IN: dict[str, tuple[str, bool, str | None]] = {
    "starlette-unlimited": ("starlette_unlimited_app", False, None),
    "bastion": ("bastion_signin_app", True, "starlette-unlimited"),
    # The same limiter with a deadline no stall on a shared machine reaches, so that its
    # figures are of counting in Valkey, never of the local fallback.
    "bastion-1s": ("bastion_signin_app", True, "starlette-unlimited"),
    "slowapi": ("slowapi_signin_app", True, "starlette-unlimited"),
    "litestar-unlimited": ("litestar_unlimited_app", False, None),
    "litestar": ("litestar_signin_app", True, "litestar-unlimited"),
}
DEGRADED = ("healthy", "refused", "hung", "off")
#: What a smoke run serves (every contender here runs on uvicorn): one of each scenario.
SMOKE = ("bastion", "hung")
#: bastion's default CACHE_COMMAND_TIMEOUT_MS: a request that waited this long paid a deadline.
CACHE_DEADLINE_MS = 50.0


def counted(client: valkey.Valkey, ip: str) -> int:
    """Attempts recorded in Valkey for ``ip``, whatever the limiter's format: a list (slowapi)
    or sorted set (bastion) of timestamps, Litestar's JSON ``history``, or a fixed-window count."""
    total = 0
    for key in client.scan_iter(match=f"*{ip}*"):
        kind = client.type(key)
        if kind in (b"list", "list", b"zset", "zset"):
            # valkey-py types its synchronous replies as "value or awaitable"; this one is sync.
            size = client.llen(key) if kind in (b"list", "list") else client.zcard(key)
            total += cast("int", size)
            continue
        raw = cast("bytes | None", client.get(key))
        try:
            value = json.loads(raw) if raw is not None else 0
        except ValueError:
            continue
        total += len(value["history"]) if isinstance(value, dict) else int(value)
    return total


def check_signin(key: str, app: AppProcess, valkey_url: str, n: int) -> list[Check]:
    ip = f"198.51.100.{n}"
    checks = []
    with httpx.Client(base_url=app.url, timeout=5.0) as client:
        for attempt in range(1, 4):
            body = {"email": f"check{n}@example.com", "password": "x"}
            got = client.post("/sign-in", json=body, headers={"X-Forwarded-For": ip})
            checks.append(
                Check("sign-in", key, f"POST /sign-in, attempt {attempt}", OK_BODY, answer(got))
            )
    with valkey.Valkey.from_url(valkey_url) as raw:
        expected = "3" if SIGN_IN[key][1] else "0"
        question = f"attempts counted in Valkey for {ip} after 3 sign-ins"
        checks.append(Check("sign-in", key, question, expected, str(counted(raw, ip))))
    return checks


def sign_in(context: Context) -> dict[str, Any]:
    env = {VALKEY_URL_VARIABLE: context.valkey_url, RATE_LIMIT_VARIABLE: RATE_LIMIT}
    apps = {
        key: AppProcess(
            f"signin-{key}",
            f"bench.signin_apps:{factory}",
            env={**env, DEADLINE_VARIABLE: "1000"} if key == "bastion-1s" else env,
        )
        for key, (factory, _, _) in SIGN_IN.items()
        if key in context.options.chosen(SIGN_IN, SMOKE)
    }
    say(f"sign-in: starting {len(apps)} servers")
    with running(list(apps.values())):
        for n, (key, app) in enumerate(apps.items(), start=1):
            context.require(check_signin(key, app, context.valkey_url, n))
        headers = {"Content-Type": "application/json", "Origin": "http://127.0.0.1"}
        script = context.script("signin", signin_script("/sign-in", headers, IDENTITIES))
        cells = [Cell(f"sign-in/{k}", a.url + "/sign-in", script) for k, a in apps.items()]
        runs = dict(zip(apps, measure(context, cells), strict=True))
        # Reported, not a failure: under a saturating load the 50 ms deadline can pass while
        # a request waits for the event loop, and the local fallback deciding instead is the
        # limiter's declared behaviour.
        stats = {
            k: httpx.get(apps[k].url + "/stats", timeout=5).json()
            for k in ("bastion", "bastion-1s")
            if k in apps
        }
    return {
        "rate_limit": RATE_LIMIT,
        "identities": IDENTITIES,
        "figures": {key: summary(r) for key, r in runs.items()},
        "ratios": {
            key: paired(runs[key], runs[base])
            for key, (_, _, base) in SIGN_IN.items()
            if base is not None and {key, base} <= set(runs)
        },
        "stats": {key: {k: int(v) for k, v in s.items()} for key, s in stats.items()},
    }


def first_requests(app: AppProcess, count: int) -> dict[str, Any]:
    """``count`` sequential ``GET /cached`` on one keep-alive connection: ms each, and a summary."""
    latencies: list[float] = []
    with httpx.Client(base_url=app.url, timeout=5.0) as client:
        for _ in range(count):
            start = time.perf_counter()
            response = client.get("/cached")
            latencies.append((time.perf_counter() - start) * 1e3)
            if response.status_code != 200:
                raise RuntimeError(f"{app.name}: GET /cached answered {answer(response)}")
    ordered = sorted(latencies)  # nearest-rank percentiles
    return {
        "ms": latencies,
        "p50_ms": ordered[math.ceil(0.50 * len(ordered)) - 1],
        "p99_ms": ordered[math.ceil(0.99 * len(ordered)) - 1],
        "max_ms": ordered[-1],
        "waited": sum(1 for ms in latencies if ms >= 0.8 * CACHE_DEADLINE_MS),
    }


def degraded(context: Context) -> dict[str, Any]:
    options = context.options
    with valkey.Valkey.from_url(context.valkey_url) as raw:
        raw.set(f"bastion:{CACHED_KEY}", b'{"v":1}')
    with HungServer() as hung:
        # "off": the same app without a cache at all, the floor an open breaker approaches.
        targets = dict(
            zip(DEGRADED, (context.valkey_url, refused_url(), hung.url, ""), strict=True)
        )
        apps = {
            key: AppProcess(f"cache-{key}", "bench.apps:cached_app", env={VALKEY_URL_VARIABLE: url})
            for key, url in targets.items()
            if key in options.chosen(DEGRADED, SMOKE)
        }
        say(f"degraded: starting {len(apps)} servers")
        with running(list(apps.values())):
            # Fresh processes, breaker closed: nothing has touched the cache yet.
            first = {key: first_requests(app, options.first_requests) for key, app in apps.items()}
            checks = []
            for key, app in apps.items():
                got = httpx.get(app.url + "/cached", timeout=5)
                expected = f"200 {{'hit': {key == 'healthy'}}}"
                checks.append(Check("degraded", key, "GET /cached", expected, answer(got)))
                nosniff = str(got.headers.get("x-content-type-options"))
                question = "GET /cached carries the envelope's headers"
                checks.append(Check("degraded", key, question, "nosniff", nosniff))
            context.require(checks)
            script = context.script("cached", static_script("GET", {}))
            cells = [Cell(f"degraded/{k}", a.url + "/cached", script) for k, a in apps.items()]
            # At least a second of warm-up (unless quick), so that the steady state is
            # measured with the breaker already open.
            warmup = options.warmup if options.mode != "full" else max(1, options.warmup)
            runs = measure(context, cells, warmup=warmup)
            stats = {k: httpx.get(a.url + "/stats", timeout=5).json() for k, a in apps.items()}
    return {
        "deadline_ms": CACHE_DEADLINE_MS,
        "first": first,
        "figures": {key: summary(r) for key, r in zip(apps, runs, strict=True)},
        "stats": {key: {k: int(v) for k, v in s.items()} for key, s in stats.items()},
    }
