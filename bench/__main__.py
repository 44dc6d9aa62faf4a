"""``uv run python -m bench``: every scenario into bench/results/*.json, then bench/RESULTS.md.

    uv run python -m bench                      # full run (about 25 minutes)
    uv run python -m bench --quick              # a second per contender: does it all run?
    uv run python -m bench --only in-process --before c09c43c

See ``bench.run`` for the scenarios and ``--help`` for the options.
"""

from __future__ import annotations

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())
