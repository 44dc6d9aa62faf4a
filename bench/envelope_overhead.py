"""What bastion's full stack costs over bare Starlette, in requests per second.

Kept for its short name: ``python -m bench --only plain`` limited to bare
Starlette and the same app in ``protect()``, its ratios printed and its JSON
kept in a temporary directory, so RESULTS.md is left alone.

    uv run python -m bench.envelope_overhead [--rounds 3] [--seconds 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from bench import run

__all__ = ["main"]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """The plain scenario's JSON (figures and ratios of the two contenders)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", default="3", help="rounds per contender")
    parser.add_argument("--seconds", default="3", help="length of one wrk run (whole seconds)")
    parser.add_argument("--warmup", default="1", help="untimed seconds per run before round 1")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as results:
        status = run.main(
            [
                *("--only", "plain", "--contender", "bare", "--contender", "envelope"),
                *("--rounds", args.rounds, "--seconds", args.seconds, "--warmup", args.warmup),
                *("--results", results, "--output", str(Path(results) / "RESULTS.md")),
            ]
        )
        plain: dict[str, Any] = json.loads((Path(results) / "plain.json").read_text())
    for endpoint, ratios in plain["ratios"].items():
        print(f"ratio envelope/bare req/s, {endpoint:<13}: {ratios['envelope/bare']['median']:.3f}")
    if status:
        raise SystemExit(status)
    return plain


if __name__ == "__main__":
    main()
