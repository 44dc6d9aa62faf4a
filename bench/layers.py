"""Scenario 5, in-process layers: this tree's stack, and another revision's in the same run.

``bench.inprocess`` runs in child processes, this tree's and the baseline's
(``--baseline PATH`` or ``--before REV``, exported by :func:`export`) in turn,
several times; each figure is the median over the children, so a slow stretch
of a shared machine falls on both revisions alike.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from harness.servers import ROOT

from bench.results import Context, say


def export(revision: str, directory: Path) -> Path:
    """``revision``'s ``src/`` and ``example/`` (``git archive``) under ``directory``; the path
    of that ``src``."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", revision, "src", "example"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"git archive {revision} failed: {done.stderr.decode(errors='replace')}")
    target = directory / f"before-{revision.replace('/', '_')}"
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(target, filter="data")
    return target / "src"


def python_path(src: Path) -> list[str]:
    """A child's path to run another revision: its ``src``, and the example beside it, whose
    checks (an entry point) loading settings may load, on the bastion of that revision."""
    return [str(src), *(str(p) for p in [src.parent / "example"] if p.is_dir())]


def inprocess(rounds: int, count: int, src: Path | None) -> dict[str, Any]:
    """``python -m bench.inprocess`` in a fresh interpreter, on ``src``'s bastion if any."""
    paths = python_path(src) if src is not None else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, str(ROOT)])}
    command = [sys.executable, "-m", "bench.inprocess", "--rounds", str(rounds)]
    command += ["--count", str(count)]
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=900, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.inprocess ({src or 'this tree'}) failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def scenario(context: Context) -> dict[str, Any]:
    """``{"revisions": {"current": {endpoint: {layer: µs}}, "before": ...}, "parts": ...}``."""
    options = context.options
    rounds, count, children = options.inprocess
    versions: dict[str, Path | None] = {"current": None}
    if options.baseline is not None:
        versions["before"] = options.baseline
    say(f"in-process: {children} x {len(versions)} children of {rounds} rounds x {count} requests")
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in versions}
    for _ in range(children):
        for name, path in versions.items():
            samples[name].append(inprocess(rounds, count, path))
    revisions: dict[str, Any] = {}
    parts: dict[str, float] = {}
    for name, runs in samples.items():
        found = [run.pop("parts") for run in runs if "parts" in run]
        if name == "current" and found:
            parts = {piece: statistics.median(p[piece] for p in found) for piece in found[0]}
        revisions[name] = {
            endpoint: {
                layer: statistics.median(run[endpoint][layer] for run in runs) for layer in layers
            }
            for endpoint, layers in runs[0].items()
        }
    return {
        "rounds": rounds,
        "count": count,
        "children": children,
        "before": options.baseline_name or None,
        "revisions": revisions,
        "parts": parts,
    }
