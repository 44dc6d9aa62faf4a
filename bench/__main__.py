"""``uv run python -m bench``: every scenario into bench/results/*.json, then bench/RESULTS.md.

See ``bench.run`` for the scenarios and ``--help`` for the options.
"""

from __future__ import annotations

import sys

from bench.run import main

if __name__ == "__main__":
    sys.exit(main())
