"""bastion's plain series against prometheus_client's own: the same samples, the same scrape.

The request path counts with list arithmetic (bastion.ops._series) instead of
prometheus_client's children; these tests feed both the same observations and
compare what a scrape shows, bucket by bucket.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from bastion.ops._metrics import DURATION, LATENCY_BUCKETS, REQUEST_LABELS, REQUESTS
from bastion.ops._series import PlainCounter, RequestSeries

Sample = tuple[str, tuple[tuple[str, str], ...], float]

ROUTES = st.sampled_from(["/", "/api/health", "<unmatched>", "/items/{id}"])
METHODS = st.sampled_from(["GET", "POST", "HEAD"])
STATUSES = st.sampled_from([200, 201, 303, 400, 403, 404, 429, 499, 500])
#: Durations on and around every bucket bound, the edges where off-by-one lives.
EDGES = [b * f for b in LATENCY_BUCKETS for f in (0.5, 1.0, 1.0000001)]
SECONDS = st.one_of(st.sampled_from(EDGES), st.floats(0, 30, allow_nan=False))


def scrape(source: Collector | CollectorRegistry) -> set[Sample]:
    """Every sample a scrape shows, but the ``_created`` timestamps (bastion's have none)."""
    registry = source if isinstance(source, CollectorRegistry) else CollectorRegistry()
    if registry is not source:
        registry.register(source)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items())), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


@settings(deadline=None)  # a loaded CI machine is slow, not wrong
@given(st.lists(st.tuples(ROUTES, METHODS, STATUSES, SECONDS), max_size=200))
def test_request_series_scrapes_exactly_like_prometheus_client(
    requests: list[tuple[str, str, int, float]],
) -> None:
    ours = RequestSeries(REQUESTS, DURATION, REQUEST_LABELS, LATENCY_BUCKETS)
    theirs = CollectorRegistry()
    counter = Counter(*REQUESTS, REQUEST_LABELS, registry=theirs)
    histogram = Histogram(*DURATION, REQUEST_LABELS, buckets=LATENCY_BUCKETS, registry=theirs)
    for route, method, status, seconds in requests:
        ours.observe(route, method, status, seconds)
        counter.labels(route, method, str(status)).inc()
        histogram.labels(route, method, str(status)).observe(seconds)
    expected = scrape(theirs)
    got = scrape(ours)
    # Sums are floats added in the same order: equal to the last bit.
    assert got == expected


@settings(deadline=None)
@given(st.lists(st.sampled_from(["hit", "miss", "error"]), max_size=100))
def test_plain_counter_scrapes_exactly_like_prometheus_client(events: list[str]) -> None:
    ours = PlainCounter("bastion_cache_operations_total", "doc", ["result"])
    theirs = CollectorRegistry()
    counter = Counter("bastion_cache_operations_total", "doc", ["result"], registry=theirs)
    for event in events:
        ours.inc((event,))
        counter.labels(event).inc()
    assert scrape(ours) == scrape(theirs)
