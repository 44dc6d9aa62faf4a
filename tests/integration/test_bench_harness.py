"""Keep the benchmarks runnable: a smoke run of every scenario must answer correctly and render.

No timing is asserted here; benchmarks measure speed, tests check behaviour.
One ``python -m bench --smoke --before HEAD`` (one short round of every
contender, wrk runs four at a time, HEAD's ``src/`` beside this tree's) is
shared by the tests below. They read what it wrote: each scenario's JSON
(the checks the harness asked before measuring, and what was measured) and
RESULTS.md rendered into a temporary directory, never over the committed one.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from bench import cache_overhead, hold, plain, report, run, signin
from bench.results import RESULTS_MD
from harness.wrk import parse_done, signin_script, static_script

Results = dict[str, dict[str, Any]]
#: The checks of bench.hold, as they name their scenario.
FLOOD, SATURATION = "sign-in flood", "cache saturation"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, str]:
    directory = tmp_path_factory.mktemp("bench")
    committed = RESULTS_MD.read_text()
    output = directory / "RESULTS.md"
    status = run.main(
        ["--smoke", "--before", "HEAD", "--results", str(directory), "--output", str(output)]
    )
    assert status == 0, "the run reported problems"
    assert RESULTS_MD.read_text() == committed, "a smoke run must leave RESULTS.md alone"
    results = {path.stem: json.loads(path.read_text()) for path in directory.glob("*.json")}
    return results, output.read_text()


def _check(results: Results, scenario: str, contender: str, question: str) -> dict[str, str]:
    """The check asked as ``question`` (exactly, else the one question starting so)."""
    mine: list[dict[str, str]] = [
        c for c in results[scenario]["checks"] if c["contender"] == contender
    ]
    exact = [c for c in mine if c["question"] == question]
    (found,) = exact or [c for c in mine if c["question"].startswith(question)]
    return found


def test_every_scenario_wrote_its_json_and_every_check_passed(smoke: tuple[Results, str]) -> None:
    results, _ = smoke
    assert set(results) == {*run.SCENARIOS, "run"}
    assert results["run"]["problems"] == []
    checks = [c for name in run.SCENARIOS for c in results[name]["checks"]]
    assert checks
    assert [c for c in checks if c["expected"] != c["got"]] == []
    assert {c["scenario"] for c in checks} >= {"plain", "sign-in", "degraded", FLOOD, SATURATION}


def test_every_contender_of_every_scenario_was_measured(smoke: tuple[Results, str]) -> None:
    results, _ = smoke
    for endpoint in plain.ENDPOINTS:
        assert set(results["plain"]["figures"][endpoint]) == {*plain.KEYS, "envelope-before"}
    assert set(results["sign-in"]["figures"]) == set(signin.SIGN_IN)
    assert set(results["degraded"]["figures"]) == set(signin.DEGRADED)
    figures = [
        *(f for row in results["plain"]["figures"].values() for f in row.values()),
        *results["sign-in"]["figures"].values(),
        *results["degraded"]["figures"].values(),
    ]
    for item in figures:
        assert item["requests"] > 0, item
        assert item["non_2xx"] == 0, item
    assert results["cache"]["misses"] == 0
    revisions = results["in-process"]["revisions"]
    assert set(revisions) == {"current", "before"}, "--before HEAD ran beside this tree"
    for layers in (revisions["current"], revisions["before"]):
        assert set(layers) == set(plain.ENDPOINTS)
        assert {"bare", "protect+metrics"} <= set(layers["GET /json"])


def test_protected_contenders_refuse_forged_posts_and_the_bare_app_does_not(
    smoke: tuple[Results, str],
) -> None:
    results, _ = smoke
    for contender in plain.KEYS:
        unprotected = contender in ("bare", "headers", "bare-granian")
        forged = _check(results, "plain", contender, "POST /submit without Origin")
        assert forged["got"] == ("200" if unprotected else "403"), forged
        same_origin = _check(results, "plain", contender, "same-origin POST /submit")
        assert same_origin["got"] == "200 {'ok': True}", same_origin
        host = _check(results, "plain", contender, "GET /json with Host: evil.example")
        assert host["got"] == ("200" if unprotected else "400"), host


def test_rate_limited_endpoints_count_in_valkey(smoke: tuple[Results, str]) -> None:
    results, _ = smoke
    for contender in signin.SIGN_IN:
        check = _check(results, "sign-in", contender, "attempts counted in Valkey")
        assert check["got"] == ("0" if "unlimited" in contender else "3"), check
    assert results["sign-in"]["stats"]["bastion"]["decisions"] > 0


def test_a_hung_valkey_costs_one_deadline_per_request_until_the_breaker_opens(
    smoke: tuple[Results, str],
) -> None:
    results, _ = smoke
    hung = results["degraded"]["first"]["hung"]
    # A behaviour, not a timing: the first five waited out the deadline, the last did not.
    assert hung["waited"] >= 5
    assert hung["ms"][-1] < signin.CACHE_DEADLINE_MS
    assert _check(results, "degraded", "healthy", "GET /cached")["got"] == "200 {'hit': True}"
    assert _check(results, "degraded", "hung", "GET /cached")["got"] == "200 {'hit': False}"


def test_a_sign_in_flood_is_refused_without_fallback_and_every_refusal_is_audited(
    smoke: tuple[Results, str],
) -> None:
    results, _ = smoke
    flood = results["sign-in-flood"]
    attempts = [c for c in flood["checks"] if c["question"].startswith("wrong password")]
    assert [c["got"] for c in attempts] == ["401"] * hold.FLOOD_LIMIT + ["429", "429"]
    assert {c["contender"] for c in attempts[: hold.FLOOD_LIMIT]} == {"instance 1", "instance 2"}
    # A smoke run is far shorter than the limit's window: exactly the limit got through.
    assert flood["span_s"] < hold.FLOOD_WINDOW_S
    assert flood["answers"]["401"] == hold.FLOOD_LIMIT == flood["reached_before"]
    assert flood["rounds"][0]["reached"] == 0
    assert flood["rounds"][0]["refused"] > 0
    assert flood["fallbacks"] == 0
    assert flood["server_errors"] == 0
    assert flood["lag"]["samples"] > 0, "both instances' loop lag was sampled"
    assert flood["graceful"]
    assert flood["blocked_count"] == flood["answers"]["429"]
    assert flood["blocked_clients"] == ["127.0.0.1"]
    assert flood["failed_rows"] == hold.FLOOD_LIMIT
    for instance in flood["instances"]:
        assert instance["bare"]["requests"] > 0
        assert instance["bare"]["non_2xx"] == 0
        assert instance["blocked"]["requests"] > 0


def test_saturating_reads_of_a_stored_key_stay_hits_and_the_breaker_stays_closed(
    smoke: tuple[Results, str],
) -> None:
    results, _ = smoke
    result = results["cache-saturation"]
    assert [c["connections"] for c in result["cells"]] == list(hold.SATURATION_CONNECTIONS)
    for cell in result["cells"]:
        assert cell["reads"] >= cell["figures"]["requests"]  # every request read the key once
        assert cell["hits"] > 0
        # The key is stored for 10 minutes: a read misses only when its call failed.
        assert cell["misses"] == cell["errors"], cell
        assert cell["non_200"] == 0
        assert cell["lag"]["samples"] > 0
    assert result["breaker_opened"] == 0
    assert result["breaker_state"] == 0
    assert result["returncode"] in hold.GRACEFUL


def test_the_report_names_every_scenario_and_the_goals(smoke: tuple[Results, str]) -> None:
    _, text = smoke
    for heading in (
        "## Machine",
        "## Goals",
        "## 1. Plain",
        "### ASGI server",
        "### Before and after",
        "## 2. Sign-in",
        "## 3. `cache_get`",
        "## 4. Degraded",
        "## 5. Where the envelope's time goes",
        "## 6. Sign-in flood",
        "## 7. Cache under saturation",
        "## How this was measured",
    ):
        assert heading in text
    goals = text.split("## Goals", 1)[1].split("\n## ", 1)[0]
    assert goals.startswith("\n\n| goal | this run | met | why |")
    for goal in (
        "protect+metrics ≤ +2.0 µs over bare",
        "in-process, after ≤ before + 0.5 µs",
        "0.95 x bare + the same headers",
        "3 x Django",
        "`cache_get` ≤ 1.10",
        "breaker open: ≤ 1 ms",
        "refused sign-in ≥ 0.5 x bare POST",
        "password check ≤ 10",
        "misses ≤ 0.1%",
    ):
        assert goal in goals
    assert "uv run python -m bench --smoke" in text


def test_the_committed_results_render_the_committed_report() -> None:
    """RESULTS.md is what bench/results/*.json and the template make: nobody edited it by hand."""
    assert report.render(RESULTS_MD.parent / "results") == RESULTS_MD.read_text()


def test_wrk_scripts_report_through_the_done_hook() -> None:
    assert "done = function" in static_script("GET", {"Cookie": "a=b"})
    assert "X-Forwarded-For" in signin_script("/sign-in", {}, 16)
    result = parse_done(
        'noise\nBENCH_JSON {"requests":10,"duration_us":2000000,"connect":0,"read":1,'
        '"write":0,"timeout":0,"status":2,"p50_us":1500,"p90_us":2000,"p99_us":3000,'
        '"p999_us":4000,"max_us":5000}\n'
    )
    assert result.rps == 5.0
    assert (result.p99_ms, result.non_2xx, result.socket_errors) == (3.0, 2, 1)


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
    assert lag((50, 59, 60), 1.0).data()["p99_ms"] is None


def test_the_older_entry_points_still_run() -> None:
    result = cache_overhead.main(["--rounds", "1", "--ops", "20"])
    assert result["raw_us"] > 0
    assert result["misses"] == 0
    committed = RESULTS_MD.read_text()
    only = ["--only", "plain", "--contender", "bare", "--contender", "envelope", "--rounds", "1"]
    assert run.main([*only, "--seconds", "1", "--warmup", "0"]) == 0
    assert RESULTS_MD.read_text() == committed, "a run of some contenders leaves RESULTS.md alone"
