"""Load from wrk against a real app process, and its metrics read back afterwards.

The load generator is wrk (a C program, one thread), so the two cores are
spent on the app and Valkey rather than on a Python client; each run is
bounded in time and targets loopback only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

import httpx
from bench.wrk import WrkRun, run_wrk, static_script
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "scrape", "total", "wrk"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


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


def scrape(base_url: str) -> Samples:
    """Every sample of ``/api/metrics``, keyed by name and sorted labels."""
    response = httpx.get(base_url + "/api/metrics", timeout=10)
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))
