"""Start-up: ``import bastion; bastion.Bastion()`` under ``python -X importtime``, beside REV.

    uv run python -m bench.imports REV [RUNS]

Fresh interpreters on the embedded default (SQLite, no Valkey, jobs off), this
tree's and REV's (``git archive``, as ``--before``) in turn, RUNS (15) of each;
a run's figure is the sum of its top-level imports' cumulative times. Prints
the medians, their ratio, and which optional heavy packages each tree loaded.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.servers import ROOT

from bench.layers import export, python_path

HEAVY = {"alembic", "procrastinate", "psycopg", "asyncpg"}
_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| ( *)(\w+)")


def importtime(src: Path, scratch: Path) -> tuple[float, set[str]]:
    """Seconds of top-level imports on ``src``'s bastion, and which of :data:`HEAVY` it loaded."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(python_path(src))}
    env["DATABASE_URL"] = f"sqlite:///{scratch}/bastion.db"
    code = "import bastion; bastion.Bastion()"
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=scratch,
                          env=env, capture_output=True, text=True, check=True)  # fmt: skip
    found = _LINE.findall(done.stderr)
    return sum(int(c) for c, indent, _ in found if not indent) / 1e6, {n for *_, n in found} & HEAVY


def main(before: str, runs: int = 15) -> None:
    with tempfile.TemporaryDirectory(prefix="bastion-imports-") as tmp:
        trees = {before: export(before, Path(tmp)), "current": ROOT / "src"}
        done = [{n: importtime(src, Path(tmp)) for n, src in trees.items()} for _ in range(runs)]
    median = {n: statistics.median(run[n][0] for run in done) for n in trees}
    heavy = {n: sorted(set[str]().union(*(run[n][1] for run in done))) for n in trees}
    ratio = median["current"] / median[before]
    print(json.dumps({"runs": runs, "median_s": median, "ratio": ratio, "heavy": heavy}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], *(int(n) for n in sys.argv[2:3]))
