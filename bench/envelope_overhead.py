"""What bastion's full stack costs over bare Starlette, in requests per second.

Kept for its short name: it is ``python -m bench --only plain`` limited to the
two contenders (bare Starlette, and the same app in ``protect()``), printed
rather than written to RESULTS.md. The whole comparison, peers included, is
``python -m bench``.

    uv run python -m bench.envelope_overhead [--rounds 3] [--seconds 3] [--warmup 1]
"""

from __future__ import annotations

import argparse

from bench import suite

__all__ = ["main"]


def main(argv: list[str] | None = None) -> suite.Report:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", default="3", help="rounds per contender")
    parser.add_argument("--seconds", default="3", help="length of one wrk run (whole seconds)")
    parser.add_argument("--warmup", default="1", help="untimed seconds per run before round 1")
    args = parser.parse_args(argv)
    report = suite.main(
        [
            *("--only", "plain"),
            *("--contender", "bare", "--contender", "envelope"),
            *("--rounds", args.rounds, "--seconds", args.seconds, "--warmup", args.warmup),
            *("--output", "-"),
        ]
    )
    for endpoint in ("GET /json", "POST /submit"):
        ratio = report.ratio("plain", endpoint, "envelope", "bare")
        print(f"ratio envelope/bare req/s, {endpoint:<13}: {ratio:.3f}")
    return report


if __name__ == "__main__":
    main()
