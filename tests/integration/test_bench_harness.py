"""Keep the benchmarks runnable: a very short run of each must answer correctly.

No timing is asserted here; benchmarks measure speed, tests check behaviour.
"""

from __future__ import annotations

from bench import cache_overhead, envelope_overhead


def test_cache_overhead_bench_runs() -> None:
    result = cache_overhead.main(["--rounds", "1", "--ops", "20"])
    assert result.raw_per_op > 0
    assert result.wrapped_per_op > 0


def test_envelope_bench_runs() -> None:
    report = envelope_overhead.main(["--rounds", "1", "--seconds", "1", "--warmup", "0"])
    assert report.checks
    assert all(check.ok for check in report.checks)
    assert {check.contender for check in report.checks} == {"bare", "envelope"}
    measured = {(item.contender, item.endpoint) for item in report.figures}
    assert measured == {
        (contender, endpoint)
        for contender in ("bare", "envelope")
        for endpoint in ("GET /json", "POST /submit")
    }
    for item in report.figures:
        assert item.rps > 0, item
