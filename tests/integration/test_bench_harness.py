"""Keep the benchmarks runnable: a very short run of each must answer correctly.

No timing is asserted here; benchmarks measure speed, tests check behaviour.
"""

from __future__ import annotations

from bench import cache_overhead


def test_cache_overhead_bench_runs() -> None:
    result = cache_overhead.main(["--rounds", "1", "--ops", "20"])
    assert result.raw_per_op > 0
    assert result.wrapped_per_op > 0
