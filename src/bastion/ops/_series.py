"""Counters and a histogram that cost a dict lookup and an addition per sample.

prometheus_client's children take a lock and go through a value object on
every ``inc`` and ``observe``; a histogram observation also walks its
buckets in Python. On the request path that was microseconds per request,
about as much as the whole envelope. Here a sample is list arithmetic on the
event loop's own thread, and the Prometheus families are built only when
somebody scrapes (:meth:`RequestSeries.collect`), from the same numbers, so the scrape is
exact. The exposition is still prometheus_client's (these are collectors on
its registry), with the names, labels and buckets that were documented.

Single-threaded by design: every sample is taken on the event loop's thread
(the request observer, the cache's hooks). Several worker *processes* share
counts through prometheus_client's multiprocess mode instead, which
:class:`bastion.ops.Metrics` selects when ``PROMETHEUS_MULTIPROC_DIR`` is set.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

Labels = tuple[str, ...]


class PlainCounter(Collector):
    """A labelled counter: ``inc(labels)`` adds one to the series ``labels``."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name.removesuffix("_total")
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.values: dict[Labels, int] = {}

    def inc(self, labels: Labels) -> None:
        values = self.values
        values[labels] = values.get(labels, 0) + 1

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric(list(labels), value)
        yield family


class RequestSeries(Collector):
    """The request counter and the latency histogram, from one list per series.

    A request's count is its histogram count, so one cell feeds both families:
    ``[sum of seconds, count in bucket 0, ..., count above the last bound]``.
    Recording a request is one dict lookup, a bisect and three additions;
    bucket counts are made cumulative at scrape time, as the text format wants.
    Labels are (route template, method, status code), the code kept as an int
    until the scrape.
    """

    def __init__(
        self,
        counter: tuple[str, str],
        histogram: tuple[str, str],
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        self.counter_name, self.counter_doc = counter[0].removesuffix("_total"), counter[1]
        self.histogram_name, self.histogram_doc = histogram
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(sorted(buckets))
        self.cells: dict[tuple[str, str, int], list[float]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = [0.0] * (len(self.bounds) + 2)
        cell[0] += seconds
        cell[1 + bisect_left(self.bounds, seconds)] += 1

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.counter_name, self.counter_doc, labels=self.labelnames)
        yield HistogramMetricFamily(self.histogram_name, self.histogram_doc, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily(self.counter_name, self.counter_doc, labels=self.labelnames)
        histogram = HistogramMetricFamily(
            self.histogram_name, self.histogram_doc, labels=self.labelnames
        )
        edges = [*(_le(bound) for bound in self.bounds), "+Inf"]
        for (route, method, status), cell in list(self.cells.items()):
            labels = [route, method, str(status)]
            running = 0.0
            buckets: list[tuple[str, float]] = []
            for edge, count in zip(edges, cell[1:], strict=True):
                running += count
                buckets.append((edge, running))
            counter.add_metric(labels, running)
            histogram.add_metric(labels, buckets, cell[0])
        yield counter
        yield histogram


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client prints it (``0.005``, ``1.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))
