"""Load from wrk against a real app process, and its metrics read back afterwards.

The load generator is wrk (a C program, one thread), so the two cores are
spent on the app and Valkey rather than on a Python client; each run is
bounded in time and targets loopback only. wrk's runner and the metrics
scrape live in :mod:`harness`, which the benchmarks use too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from harness.metrics import Samples, scrape, total
from harness.wrk import WrkRun, run_wrk, static_script

__all__ = ["Samples", "scrape", "total", "wrk"]


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> WrkRun:
    """The same request over ``connections`` keep-alive connections for ``seconds``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(static_script(method, headers or {}, body))
    try:
        return run_wrk(url, seconds, Path(script.name), connections=connections)
    finally:
        Path(script.name).unlink(missing_ok=True)
