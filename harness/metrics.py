"""A Prometheus scrape of a running app's ``/api/metrics``, as an operator reads it."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "by_label", "scrape", "total"]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


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


def by_label(samples: Samples, name: str, label: str, **labels: str) -> dict[str, float]:
    """``name`` summed per value of ``label``, over the series whose labels include ``labels``."""
    wanted = set(labels.items())
    sums: dict[str, float] = {}
    for (n, ls), value in samples.items():
        tags = dict(ls)
        if n == name and wanted <= set(ls) and label in tags:
            sums[tags[label]] = sums.get(tags[label], 0.0) + value
    return sums
