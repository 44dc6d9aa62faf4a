"""RESULTS.md's goals and sections for scenarios 6 and 7 (``bench.hold``).

As in :mod:`bench.report`, every verdict and every sentence that depends on
a figure is written from the figure.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from bench.example_apps import BARE_POST_PATH
from bench.hold import (
    FLOOD_ACCOUNT_LIMIT,
    FLOOD_BODY,
    FLOOD_CONNECTIONS,
    FLOOD_LIMIT,
    FLOOD_WINDOW_S,
    HOT_PATH,
    HOT_TTL,
    HOT_VALUE,
    SIGN_IN_PATH,
    FloodResult,
    SaturationCell,
    SaturationResult,
)
from bench.suite import Report

__all__ = ["GoalRow", "hold_goals", "hold_sections"]

#: At most this share of the hot key's reads may miss.
MAX_MISS_SHARE = 0.001
#: Refused sign-ins must be answered at least this fast, relative to the bare POST.
MIN_REFUSED_RATIO = 0.5

#: (goal, this run's figure, met, why): what ``bench.report.Goal`` is built from.
GoalRow = tuple[str, str, bool, str]


def _goal(text: str, figure: str, met: bool, why: str) -> GoalRow:
    return text, figure, met, why


def hold_goals(report: Report) -> list[GoalRow]:
    """(goal, figure, met, why) for every goal of scenarios 6 and 7 the run has figures for."""
    result: list[GoalRow] = []
    if report.flood is not None and report.flood.rounds:
        result += _flood_goals(report.flood)
    if report.saturation is not None and report.saturation.cells:
        result += _saturation_goals(report.saturation)
    return result


# --- goals: sign-in flood ------------------------------------------------------------------


def _flood_goals(flood: FloodResult) -> list[GoalRow]:
    return [
        _refused_goal(flood),
        _reached_goal(flood),
        _local_goal(flood),
        _goal(
            "sign-in flood: no 5xx",
            f"{flood.server_errors:,}",
            flood.server_errors == 0,
            "every route of both instances, whole run (`bastion_http_requests_total`)",
        ),
        _audit_goal(flood),
    ]


def _lag(flood: FloodResult) -> str:
    return (
        f"the instances' event loops ran {flood.lag.mean_ms:.1f} ms late on average, 99 % "
        f"of samples ≤ {_bound(flood.lag.bound_ms(0.99))}"
    )


def _local_goal(flood: FloodResult) -> GoalRow:
    why = (
        f"{flood.fallbacks:,} of {flood.sign_ins:,} sign-in requests were decided by the "
        "local fallback (`bastion_rate_limit_fallbacks_total`); the rest by Valkey's "
        "script, or from the remembered refusal Valkey gave"
    )
    if flood.fallbacks:
        rounds = ", ".join(
            f"round {n}: {r.fallbacks}" for n, r in enumerate(flood.rounds, 1) if r.fallbacks
        )
        why += (
            f". Valkey was up throughout: a fallback is a decision that missed its 50 ms "
            f"deadline ({rounds or 'none in the rounds'}); {_lag(flood)}"
        )
        if all(r.reached for r in flood.rounds if r.fallbacks):
            why += (
                ". They came only in rounds where a window freed its slots: the remembered "
                "refusal expires, every connection's next attempt asks Valkey at once, and "
                "the admitted ones start password hashes on the same two cores"
            )
    return _goal(
        "sign-in flood: decisions taken locally while Valkey is healthy = 0",
        f"{flood.local_share:.4%}",
        flood.fallbacks == 0,
        why,
    )


def _refused_goal(flood: FloodResult) -> GoalRow:
    ratio = flood.ratio()
    per_instance = ", ".join(
        f"instance {i + 1}: {flood.ratio(i):.2f}" for i in range(flood.instances)
    )
    blocked = [flood.figures(i, bare=False).rps for i in range(flood.instances)]
    bare = [flood.figures(i, bare=True).rps for i in range(flood.instances)]
    return _goal(
        f"sign-in flood: refused sign-in ≥ {MIN_REFUSED_RATIO:g} x bare POST req/s (same instance)",
        f"{ratio:.2f}",
        ratio >= MIN_REFUSED_RATIO,
        f"{_join(blocked)} refused against {_join(bare)} bare POST req/s per instance "
        f"(medians; per-instance ratios {per_instance}). A refusal from the limiter's memory "
        "parses the JSON body, looks the client up in a dict and adds one to an in-memory "
        "tally: no Valkey round trip, no database",
    )


def _reached_goal(flood: FloodResult) -> GoalRow:
    bound = FLOOD_LIMIT * flood.windows
    per_round = " ".join(str(r.reached) for r in flood.rounds)
    why = (
        f"401s over the whole run, both instances: {flood.reached_before} before round 1 "
        f"(the checks spend the limit), then per round {per_round}; the attempts spanned "
        f"{flood.span_s:.0f} s, so a moving window of {FLOOD_LIMIT}/minute admits at most "
        f"{bound}. Every decision Valkey takes is exact across instances (one script, "
        "atomic)"
    )
    if flood.fallbacks:
        why += (
            f"; the {flood.fallbacks} decisions of the local fallback are not: each process's "
            f"own window knows nothing of the shared count and admits up to {FLOOD_LIMIT} "
            "per window (the declared fail policy), which is where any excess comes from"
        )
    return _goal(
        f"sign-in flood: attempts reaching the password check ≤ {FLOOD_LIMIT} (the limit) "
        f"per {FLOOD_WINDOW_S:.0f} s window, both instances together",
        f"{flood.reached:,} in {flood.windows} window{'s' if flood.windows > 1 else ''}",
        flood.reached <= bound,
        why,
    )


def _audit_goal(flood: FloodResult) -> GoalRow:
    met = flood.blocked_rows > 0 and flood.blocked_count == flood.refused
    clients = ", ".join(flood.blocked_clients) or "none"
    stopped = "both instances stopped cleanly" if flood.graceful else f"exit {flood.returncodes}"
    return _goal(
        "sign-in flood: after SIGTERM, the `auth.sign_in.blocked` rows' counts add up to "
        "the 429s answered",
        f"{flood.blocked_count:,} = {flood.refused:,}"
        if met
        else f"{flood.blocked_count:,} ≠ {flood.refused:,}",
        met,
        f"{flood.blocked_rows:,} rows (one per instance, client and 5 s flush window, the "
        f"last written at shutdown), client IP {clients}; "
        f"{stopped}; {flood.failed_rows} `auth.sign_in.failed` rows for the {flood.reached} 401s",
    )


# --- goals: cache under saturation ------------------------------------------------------


def _saturation_goals(result: SaturationResult) -> list[GoalRow]:
    goals = [
        _goal(
            f"cache under saturation: misses ≤ {MAX_MISS_SHARE:.1%} of reads "
            f"({cell.connections} connections)",
            f"{cell.miss_share:.3%}",
            cell.miss_share <= MAX_MISS_SHARE,
            f"{cell.misses:,} misses ({cell.errors:,} failed calls) in {cell.reads:,} reads "
            f"of one stored key at {cell.figures.rps:,.0f} req/s; event loop late by "
            f"{cell.lag.mean_ms:.1f} ms on average, 99 % of samples ≤ "
            f"{_bound(cell.lag.bound_ms(0.99))}",
        )
        for cell in result.cells
    ]
    opened = result.breaker_opened
    goals.append(
        _goal(
            "cache under saturation: the valkey breaker never opened",
            "never" if opened == 0 else f"opened {opened} times",
            opened == 0 and result.breaker_state == 0,
            f"{len(result.breaker_lines)} `cache breaker valkey:` lines in the app's log; "
            f'`bastion_cache_breaker_state{{breaker="valkey"}}` {result.breaker_state:.0f} '
            "after the last run",
        )
    )
    non_200 = sum(cell.non_200 for cell in result.cells)
    requests = sum(cell.figures.requests for cell in result.cells)
    goals.append(
        _goal(
            "cache under saturation: no answer other than 200",
            f"{non_200:,}",
            non_200 == 0,
            f"{requests:,} requests over {len(result.cells)} connection counts "
            "(non-2xx and socket errors as wrk counts them)",
        )
    )
    return goals


# --- sections -----------------------------------------------------------------------------


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _join(values: Iterable[float]) -> str:
    return " / ".join(f"{v:,.0f}" for v in values)


def _bound(ms: float) -> str:
    return "> 1 s" if ms == float("inf") else f"{ms:g} ms"


def hold_sections(report: Report) -> list[str]:
    lines: list[str] = []
    if report.flood is not None and report.flood.rounds:
        lines += _flood(report.flood)
    if report.saturation is not None and report.saturation.cells:
        lines += _saturation(report.saturation)
    return lines


def _flood(flood: FloodResult) -> list[str]:
    lines = [
        "## 6. Sign-in flood: one client IP against two instances",
        "",
        *_flood_text(),
        "",
    ]
    rows = []
    for i in range(flood.instances):
        blocked, bare = flood.figures(i, bare=False), flood.figures(i, bare=True)
        ratios = flood.ratios(i)
        rows.append(
            [
                f"instance {i + 1}",
                f"{blocked.rps:,.0f}",
                f"{blocked.p50_ms:.2f}",
                f"{blocked.p99_ms:.2f}",
                f"{bare.rps:,.0f}",
                f"{bare.p50_ms:.2f}",
                f"{bare.p99_ms:.2f}",
                f"**{flood.ratio(i):.3f}** ({min(ratios):.2f}-{max(ratios):.2f})",
                " ".join(f"{r:.2f}" for r in ratios),
            ]
        )
    lines += _table(
        [
            "",
            "refused sign-in req/s",
            "p50 ms",
            "p99 ms",
            "bare POST req/s",
            "p50 ms",
            "p99 ms",
            "refused ÷ bare (round range)",
            "per round",
        ],
        rows,
    )
    lines += ["", *_flood_rounds(flood), "", *_flood_totals(flood), ""]
    return lines


def _flood_text() -> list[str]:
    return [
        "Two instances of the example app (`bench.example_apps:example_with_bare_post`: "
        f"the example's routes plus a bare `POST {BARE_POST_PATH}` that drains its body and "
        'answers `{"ok": true}`, behind the same `protect()` stack, metrics and access log) '
        "share one Valkey and one SQLite database; "
        f"`SIGN_IN_RATE_LIMIT={FLOOD_LIMIT}/minute`, "
        f"`SIGN_IN_ACCOUNT_RATE_LIMIT={FLOOD_ACCOUNT_LIMIT}` (so the per-IP limit binds), "
        "`METRICS_ENABLED=true`. One client IP (wrk on loopback, no X-Forwarded-For) sends "
        f"`POST {SIGN_IN_PATH}` with a wrong password over {FLOOD_CONNECTIONS} keep-alive "
        f"connections to each instance, both wrk runs at once ({2 * FLOOD_CONNECTIONS} in "
        f"all); then the same two wrk runs send the bare POST, with the same `Origin` and "
        f"the same body (`{FLOOD_BODY}`, {len(FLOOD_BODY)} bytes). A round is both, "
        "refused then bare, so each ratio compares one instance with itself in the same "
        "round.",
        "",
        f"Steady state, said plainly: before anything is timed, the harness's checks send "
        f"{FLOOD_LIMIT} wrong passwords (401, alternating instances) and then one more to "
        "each instance (429), so the flood is refusals from its first request: the refused "
        "figures are those of a client already blocked, answered from the limiter's memory "
        "of Valkey's refusal. The keys are not refreshed between rounds. The moving window "
        f"frees its slots {FLOOD_WINDOW_S:.0f} s after the attempts it counted, so a run "
        f"longer than that lets {FLOOD_LIMIT} more through per window (the *per round* "
        "table shows where); that is the limit, not a leak.",
    ]


def _flood_rounds(flood: FloodResult) -> list[str]:
    rows = [
        [
            str(number),
            f"{r.reached:,}",
            f"{r.refused:,}",
            f"{r.fallbacks:,}",
            _join(run.rps for run in r.blocked),
            _join(run.rps for run in r.bare),
        ]
        for number, r in enumerate(flood.rounds, start=1)
    ]
    return [
        f"Per round ({flood.seconds} s per wrk run; {flood.reached_before} attempts reached "
        "the password check before round 1):",
        "",
        *_table(
            [
                "round",
                "401 (reached the password check)",
                "429",
                "local fallback",
                "refused req/s, instance 1 / 2",
                "bare POST req/s, instance 1 / 2",
            ],
            rows,
        ),
    ]


def _flood_totals(flood: FloodResult) -> list[str]:
    answers = ", ".join(f"{n:,} x {status}" for status, n in sorted(flood.answers.items()))
    return [
        f"Whole run, both instances (their `/api/metrics`): sign-in answers {answers}; "
        f"{flood.fallbacks:,} decisions by the local fallback; {flood.server_errors:,} 5xx "
        f"on any route; {_lag(flood)}. After SIGTERM: {flood.blocked_rows:,} "
        f"`auth.sign_in.blocked` rows whose `details.count` add up to "
        f"{flood.blocked_count:,} (429s answered: {flood.refused:,}), read with "
        "`python -m bastion.cli audit --json --limit 10000 --action auth.sign_in.blocked`.",
    ]


def _saturation(result: SaturationResult) -> list[str]:
    lines = [
        "## 7. Cache under saturation: one hot key, a healthy Valkey",
        "",
        "The example app (`bastion_example:create_app`, `METRICS_ENABLED=true`, bastion's "
        "cache defaults: 50 ms deadline, failure-rate breaker) on a healthy Valkey. The "
        f"harness stores one key with `PUT {HOT_PATH}` "
        f"(`{json.dumps({'value': HOT_VALUE, 'ttl': HOT_TTL})}`, with an `Origin`), then "
        "wrk reads it with "
        f"`GET {HOT_PATH}` over 16 and over 64 keep-alive connections, the two interleaved "
        f"in every round ({result.seconds} s per run). wrk, the app and Valkey share the "
        "machine's cores, so the app's event loop runs late under this load; what must not "
        "happen is that lateness turning hits into deadline misses or opening the breaker "
        "in front of a Valkey that is fine. Hits, misses and failed calls are "
        "`bastion_cache_operations_total`, and loop lag `bastion_event_loop_lag_seconds` "
        "(a timer due every 100 ms, how late it ran), both as the metrics' gain during the "
        "runs; the lag columns give its mean and the histogram bucket 99 % of the samples "
        "fell within.",
        "",
    ]
    lines += _table(
        [
            "connections",
            "req/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "hits / misses / errors",
            "hit rate",
            "non-200",
            "loop lag mean / p99 ≤",
        ],
        (_saturation_row(cell) for cell in result.cells),
    )
    opened = result.breaker_opened
    lines += [
        "",
        f"Breaker: {'never opened' if opened == 0 else f'opened {opened} times'}; the "
        "app's log held "
        + (
            "no `cache breaker valkey:` line"
            if not result.breaker_lines
            else "; ".join(f"`{line.strip()}`" for line in result.breaker_lines[:5])
        )
        + ".",
        "",
    ]
    return lines


def _saturation_row(cell: SaturationCell) -> list[str]:
    item = cell.figures
    hit_rate = cell.hits / cell.reads if cell.reads else 0.0
    return [
        str(cell.connections),
        f"{item.rps:,.0f}",
        f"{item.p50_ms:.2f}",
        f"{item.p99_ms:.2f}",
        f"{item.p999_ms:.2f}",
        f"{item.max_ms:.2f}",
        f"{cell.hits:,} / {cell.misses:,} / {cell.errors:,}",
        f"**{hit_rate:.4%}**",
        f"{cell.non_200:,}",
        f"{cell.lag.mean_ms:.1f} ms / {_bound(cell.lag.bound_ms(0.99))}",
    ]
