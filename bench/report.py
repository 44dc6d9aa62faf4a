"""RESULTS.md from the JSON results: ``bench/RESULTS.md.j2`` holds every sentence.

A missing scenario JSON leaves its section and goals out; this module only
loads the data and gives the template a few formats.

    uv run python -m bench.report [--results bench/results] [--output bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import shlex
import statistics
from collections.abc import Sequence
from pathlib import Path

import jinja2

from bench.results import RESULTS_DIR, RESULTS_MD, read_results, say

TEMPLATE = Path(__file__).with_name("RESULTS.md.j2")
#: The file name of a scenario's JSON -> the name the template knows it by.
NAMES = {"sign-in-flood": "flood", "cache-saturation": "saturation"} | {
    name: name.replace("-", "") for name in ("run", "plain", "sign-in", "cache", "degraded",
    "in-process", "throttled", "topologies")}  # fmt: skip


def _oneline(text: str) -> str:
    """A table cell written over several template lines, as one line."""
    return " ".join(text.split())


def _when(text: str) -> str:
    return dt.datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M UTC")


def _minutes(run: dict[str, str]) -> str:
    started, finished = (dt.datetime.fromisoformat(run[k]) for k in ("started", "finished"))
    return f"{(finished - started).total_seconds() / 60:.1f} min"


def render(directory: Path) -> str:
    """RESULTS.md from every ``*.json`` in ``directory``."""
    found = read_results(directory)
    data = {NAMES[name]: value for name, value in found.items() if name in NAMES}
    checks = sum(len(value.get("checks", ())) for value in found.values())
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE.parent),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    environment.filters.update(
        f=format, when=_when, minutes=_minutes, oneline=_oneline, json=json.dumps, shell=shlex.join
    )
    environment.tests["search"] = lambda value, pattern: re.search(pattern, value) is not None
    environment.globals.update(median=statistics.median, checks=checks)
    template = environment.get_template(TEMPLATE.name)
    text = template.render(**{name: data.get(name) for name in NAMES.values()})
    # The template's blocks leave runs of blank lines where a section was left out.
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--output", default=str(RESULTS_MD), help="- for stdout")
    args = parser.parse_args(argv)
    text = render(args.results)
    if args.output == "-":
        print(text, end="")
    else:
        Path(args.output).write_text(text)
        say(f"wrote {args.output} from {args.results}")


if __name__ == "__main__":
    main()
