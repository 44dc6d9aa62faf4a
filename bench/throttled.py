"""Scenario 8, cache on a throttled CPU: :func:`harness.throttled.measure`, with and without the
busy neighbours on the app's core, the run's Valkey pinned to the other core meanwhile."""

from __future__ import annotations

from typing import Any

from harness import throttled
from harness.servers import valkey_database

from bench.results import Context, say

#: A smoke run only proves the scenario runs: the cell with the neighbours alone.
CELLS = {"with_neighbours": throttled.NEIGHBOURS, "without_neighbours": 0}


def scenario(context: Context) -> dict[str, Any]:
    options = context.options
    seconds = throttled.SECONDS if options.mode == "full" else options.load_seconds
    result: dict[str, Any] = {"connections": throttled.CONNECTIONS, "seconds": seconds, "cells": {}}
    result["cpus"] = {"app": throttled.APP_CPU, "other": throttled.OTHER_CPU}
    if not throttled.has_two_cpus():
        return {**result, "skipped": f"needs CPUs {throttled.APP_CPU} and {throttled.OTHER_CPU}"}
    cells = list(CELLS.items())[: 1 if options.mode == "smoke" else None]
    with throttled.pinned(context.valkey_pid, {throttled.OTHER_CPU}):
        for name, neighbours in cells:
            say(f"throttled: the example app beside {neighbours} busy processes, {seconds} s")
            run = throttled.measure(
                valkey_database(context.valkey_url, 3),
                neighbours=neighbours,
                seconds=seconds,
                database_url=context.database(f"throttled-{neighbours}"),
            )
            result["cells"][name] = {"neighbours": neighbours, **run.data()}
            if run.non_2xx or run.socket_errors:
                context.problems.append(f"throttled/{name}: non-2xx answers or socket errors")
    return result
