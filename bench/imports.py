"""``uv run python -m bench.imports REV [RUNS]``: start-up beside REV (exported as ``--before``).

``import bastion; bastion.Bastion()`` on the embedded default in fresh interpreters under
``-X importtime``, this tree's and REV's in turn, RUNS (15) of each: the medians of the sums of
top-level imports, their ratio, and which heavy optional packages each tree loaded."""

import json
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
    env = {"PYTHONPATH": ":".join(python_path(src)), "DATABASE_URL": f"sqlite:///{scratch}/b.db"}
    code = [sys.executable, "-X", "importtime", "-c", "import bastion; bastion.Bastion()"]
    done = subprocess.run(code, cwd=scratch, env=env, capture_output=True, text=True, check=True)
    found = _LINE.findall(done.stderr)
    return sum(int(c) for c, pad, _ in found if not pad) / 1e6, {n for *_, n in found} & HEAVY


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
