"""Keep the benchmarks runnable: a very short run of every contender must answer correctly.

No timing is asserted here; benchmarks measure speed, tests check behaviour.
One ``--quick`` run of ``python -m bench`` (about a second per contender and
scenario) is shared by the tests below, which read its report: the checks the
harness asked before measuring, and what was measured.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench import cache_overhead, envelope_overhead, hold, suite
from bench.wrk import parse_done, signin_script, static_script

PLAIN = suite.PLAIN_KEYS
UNPROTECTED = ("bare", "headers", "bare-granian")
SIGN_IN = (
    "starlette-unlimited",
    "bastion",
    "bastion-1s",
    "slowapi",
    "litestar-unlimited",
    "litestar",
)
DEGRADED = ("healthy", "refused", "hung", "off")
#: The check scenarios of bench.hold, as they name themselves in the report.
FLOOD, SATURATION = "sign-in flood", "cache saturation"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[suite.Report, Path]:
    output = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    report = suite.main(["--quick", "--output", str(output)])
    return report, output


def test_every_check_passed_and_nothing_went_wrong(quick: tuple[suite.Report, Path]) -> None:
    report, _ = quick
    assert report.checks
    assert [c for c in report.checks if not c.ok] == []
    assert report.problems == []
    assert {c.scenario for c in report.checks} >= {FLOOD, SATURATION}


def test_every_contender_of_every_scenario_was_measured(quick: tuple[suite.Report, Path]) -> None:
    report, _ = quick
    measured = {(f.scenario, f.contender, f.endpoint) for f in report.figures}
    expected = {
        *(("plain", c, e) for c in PLAIN for e in ("GET /json", "POST /submit")),
        *(("sign-in", c, "POST /sign-in") for c in SIGN_IN),
        *(("degraded", c, "GET /cached") for c in DEGRADED),
    }
    assert measured == expected
    for item in report.figures:
        assert item.requests > 0, item
        assert item.non_2xx == 0, item
    assert report.cache is not None
    assert report.cache.misses == 0
    assert {f.contender for f in report.first_requests} == set(DEGRADED)
    assert set(report.inprocess["current"]) == {"GET /json", "POST /submit"}


def _check(report: suite.Report, scenario: str, contender: str, question: str) -> suite.Check:
    """The check asked as ``question`` (exactly, else the one question starting so)."""
    mine = [c for c in report.checks if (c.scenario, c.contender) == (scenario, contender)]
    exact = [c for c in mine if c.question == question]
    (found,) = exact or [c for c in mine if c.question.startswith(question)]
    return found


def test_protected_contenders_refuse_forged_posts_and_the_bare_app_does_not(
    quick: tuple[suite.Report, Path],
) -> None:
    report, _ = quick
    question = "POST /submit without Origin"
    for contender in PLAIN:
        check = _check(report, "plain", contender, question)
        assert check.got == ("200" if contender in UNPROTECTED else "403"), check
        same_origin = _check(report, "plain", contender, "same-origin POST /submit")
        assert same_origin.got == "200 {'ok': True}", same_origin
        host = _check(report, "plain", contender, "GET /json with Host: evil.example")
        assert host.got == ("200" if contender in UNPROTECTED else "400"), host


def test_rate_limited_endpoints_count_in_valkey(quick: tuple[suite.Report, Path]) -> None:
    report, _ = quick
    for contender in SIGN_IN:
        check = _check(report, "sign-in", contender, "attempts counted in Valkey")
        assert check.got == ("0" if "unlimited" in contender else "3"), check
    assert report.signin_stats["bastion"]["decisions"] > 0
    assert report.signin_stats["bastion-1s"]["decisions"] > 0


def test_degraded_endpoints_answer_and_a_hung_valkey_costs_one_deadline_per_request(
    quick: tuple[suite.Report, Path],
) -> None:
    report, _ = quick
    first = {f.contender: f for f in report.first_requests}
    # Until the breaker opens (5 failures) each request waits out the deadline;
    # a behaviour, not a timing: at least that many waited, and later ones did not.
    assert first["hung"].waited >= 5
    assert first["hung"].latencies_ms[-1] < suite.CACHE_DEADLINE_MS
    assert _check(report, "degraded", "healthy", "GET /cached").got == "200 {'hit': True}"
    assert _check(report, "degraded", "hung", "GET /cached").got == "200 {'hit': False}"


def _checks(report: suite.Report, scenario: str, question: str) -> list[suite.Check]:
    return [c for c in report.checks if c.scenario == scenario and c.question.startswith(question)]


def test_the_flood_checks_find_one_limit_shared_by_both_instances(
    quick: tuple[suite.Report, Path],
) -> None:
    report, _ = quick
    attempts = _checks(report, FLOOD, "wrong password, attempt")
    assert [c.got for c in attempts] == ["401"] * hold.FLOOD_LIMIT + ["429", "429"]
    # Alternating instances: each answered some of the ten, and each refused the next.
    assert {c.contender for c in attempts[: hold.FLOOD_LIMIT]} == {"instance 1", "instance 2"}
    assert {c.contender for c in attempts[hold.FLOOD_LIMIT :]} == {"instance 1", "instance 2"}
    for check in _checks(report, FLOOD, "POST /bench/post without Origin"):
        assert check.got == "403", check


def test_a_sign_in_flood_is_refused_without_fallback_and_every_refusal_is_audited(
    quick: tuple[suite.Report, Path],
) -> None:
    report, _ = quick
    flood = report.flood
    assert flood is not None
    assert len(flood.rounds) == 1
    assert flood.instances == 2
    # A quick run is far shorter than the limit's window: exactly the limit got through.
    assert flood.span_s < hold.FLOOD_WINDOW_S
    assert flood.reached == hold.FLOOD_LIMIT == flood.reached_before
    assert flood.rounds[0].reached == 0
    assert flood.rounds[0].refused > 0
    assert flood.refused == flood.sign_ins - flood.reached
    assert flood.fallbacks == 0 == flood.rounds[0].fallbacks
    assert flood.server_errors == 0
    assert flood.lag.count > 0, "both instances' loop lag was sampled"
    assert flood.graceful
    assert flood.blocked_rows >= 2, "at least one row per instance"
    assert flood.blocked_count == flood.refused
    assert flood.blocked_clients == ("127.0.0.1",)
    assert flood.failed_rows == hold.FLOOD_LIMIT
    for instance in range(flood.instances):
        bare = flood.figures(instance, bare=True)
        assert bare.requests > 0
        assert bare.non_2xx == 0
        assert bare.socket_errors == 0
        assert flood.figures(instance, bare=False).requests > 0


def test_saturating_reads_of_a_stored_key_stay_hits_and_the_breaker_stays_closed(
    quick: tuple[suite.Report, Path],
) -> None:
    report, _ = quick
    result = report.saturation
    assert result is not None
    assert _checks(report, SATURATION, "GET /api/sandbox/cache/hot")[0].ok
    assert [cell.connections for cell in result.cells] == list(hold.SATURATION_CONNECTIONS)
    for cell in result.cells:
        assert cell.figures.requests > 0
        assert cell.reads >= cell.figures.requests  # every request read the key once
        assert cell.hits > 0
        # The key is stored for 10 minutes: a read misses only when its call failed
        # (a deadline passed). How often that happens is the goal's figure, and
        # depends on how busy the machine is; that no miss is anything else does not.
        assert cell.misses == cell.errors, cell
        assert cell.non_200 == 0
        assert cell.lag.count > 0, "the loop-lag histogram was sampled during the run"
    assert result.breaker_opened == 0
    assert result.breaker_state == 0
    assert result.returncode in hold.GRACEFUL


def test_loop_lag_histograms_subtract_add_and_bound() -> None:
    """The lag columns: a cumulative histogram's gain during a run, and its bucket bounds."""

    def lag(counts: tuple[float, float, float], seconds: float) -> hold.LoopLag:
        bounds = (0.001, 0.01, math.inf)
        return hold.LoopLag(dict(zip(bounds, counts, strict=True)), seconds, counts[-1])

    # 60 samples during the run: 50 within 1 ms, 10 within 10 ms.
    during = lag((90, 100, 100), 0.5) - lag((40, 40, 40), 0.1)
    assert during.count == 60
    assert during.mean_ms == pytest.approx(1e3 * 0.4 / 60)
    assert during.bound_ms(0.5) == 1.0
    assert during.bound_ms(0.99) == 10.0
    assert (during + during).buckets == {0.001: 100, 0.01: 120, math.inf: 120}
    # One sample beyond the last finite bucket: 99 % is only bounded by +Inf.
    assert math.isinf(lag((50, 59, 60), 1.0).bound_ms(0.99))


def test_the_report_is_written(quick: tuple[suite.Report, Path]) -> None:
    _, output = quick
    text = output.read_text()
    for heading in (
        "## Machine",
        "## Goals",
        "## 1. Plain",
        "## 2. Sign-in",
        "## 4. Degraded",
        "## 6. Sign-in flood",
        "## 7. Cache under saturation",
    ):
        assert heading in text
    goals = text.split("## Goals", 1)[1].split("\n## ", 1)[0]
    for goal in ("refused sign-in ≥ 0.5 x bare POST", "password check ≤ 10", "misses ≤ 0.1%"):
        assert goal in goals
    assert "uv run python -m bench --quick" in text


def test_wrk_scripts_report_through_the_done_hook() -> None:
    assert "done = function" in static_script("GET", {"Cookie": "a=b"})
    assert "X-Forwarded-For" in signin_script("/sign-in", {}, 16)
    run = parse_done(
        'noise\nBENCH_JSON {"requests":10,"duration_us":2000000,"connect":0,"read":1,'
        '"write":0,"timeout":0,"status":2,"p50_us":1500,"p90_us":2000,"p99_us":3000,'
        '"p999_us":4000,"max_us":5000}\n'
    )
    assert run.rps == 5.0
    assert (run.p99_ms, run.non_2xx, run.socket_errors) == (3.0, 2, 1)


def test_the_older_entry_points_still_run() -> None:
    result = cache_overhead.main(["--rounds", "1", "--ops", "20"])
    assert result.raw_per_op > 0
    assert result.wrapped_per_op > 0
    assert result.misses == 0
    report = envelope_overhead.main(["--rounds", "1", "--seconds", "1", "--warmup", "0"])
    assert {f.contender for f in report.figures} == {"bare", "envelope"}
    assert all(check.ok for check in report.checks)
