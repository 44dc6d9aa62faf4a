"""``uv run python -m bench``: the whole side-by-side benchmark, written to bench/RESULTS.md.

    uv run python -m bench                      # full run (about 10 minutes)
    uv run python -m bench --quick              # a second per contender: does it all run?
    uv run python -m bench --only plain --rounds 3

See ``bench.suite`` for the scenarios and ``--help`` for the options.
"""

from __future__ import annotations

import sys

from bench.suite import main

if __name__ == "__main__":
    report = main()
    sys.exit(1 if report.problems else 0)
