"""A Prometheus scrape of a running app's ``/api/metrics``, as an operator reads it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["LoopLag", "Samples", "by_label", "scrape", "total"]

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


@dataclass
class LoopLag:
    """``bastion_event_loop_lag_seconds`` samples (one per 100 ms) as histogram deltas: ``buckets``
    maps each upper bound in seconds (``math.inf`` last) to the samples at most that late."""

    buckets: dict[float, float] = field(default_factory=dict)
    seconds: float = 0.0
    count: float = 0.0

    @classmethod
    def of(cls, samples: Samples) -> LoopLag:
        lag = cls()
        for (name, labels), value in samples.items():
            if name == "bastion_event_loop_lag_seconds_bucket":
                lag.buckets[float(dict(labels)["le"])] = value
        lag.seconds = total(samples, "bastion_event_loop_lag_seconds_sum")
        lag.count = total(samples, "bastion_event_loop_lag_seconds_count")
        return lag

    def __sub__(self, other: LoopLag) -> LoopLag:
        return LoopLag(
            {le: n - other.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.seconds - other.seconds,
            self.count - other.count,
        )

    def __add__(self, other: LoopLag) -> LoopLag:
        bounds = sorted({*self.buckets, *other.buckets})
        return LoopLag(
            {le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0) for le in bounds},
            self.seconds + other.seconds,
            self.count + other.count,
        )

    @property
    def mean_ms(self) -> float:
        return 1e3 * self.seconds / self.count if self.count else 0.0

    def bound_ms(self, share: float) -> float:
        """The smallest bucket bound that ``share`` of the samples were under, in ms."""
        for le in sorted(self.buckets):
            if self.buckets[le] >= share * self.count:
                return le * 1e3
        return math.inf

    def data(self) -> dict[str, Any]:
        """Mean, and the bucket 99 % fell within (``None``: beyond the last finite one)."""
        bound: float | None = self.bound_ms(0.99)
        bound = None if bound == math.inf else bound
        return {"mean_ms": self.mean_ms, "p99_ms": bound, "samples": self.count}
