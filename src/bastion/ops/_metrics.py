"""Prometheus metrics for every envelope decision, through prometheus_client.

Each method here is shaped to be passed as a hook to one block (the
envelope's ``on_reject``, the limiter's ``on_event``, the cache's
``on_event``, ...), so the blocks stay free of Prometheus and the wiring
lives in one place: the app factory.

Label values are always from small fixed sets (a route *template*, a reason
constant), never raw input, so a scanner hammering random paths cannot grow
the series count.

Several worker processes: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty,
writable directory before the workers start (and clear it on deploy). Each
process then writes its samples there, and a scrape of any worker aggregates
all of them (see :meth:`Metrics.render`).

prometheus_client is imported when a :class:`Metrics` is made, not with this
module: metrics are off by default (``METRICS_ENABLED``), and an app that
does not count should not pay for the library at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from bastion.cache import BreakerState

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from bastion.ops._series import PlainCounter, RequestSeries

#: Bound on remembered (route, method, status) children; see ``observe_request``.
_MAX_CACHED = 4096

REQUEST_LABELS = ("route", "method", "status")
REQUESTS = ("bastion_http_requests_total", "HTTP requests by route template, method and status.")
DURATION = (
    "bastion_http_request_duration_seconds",
    "Time to the end of the response body, by route template, method and status.",
)
CACHE_EVENTS = (
    "bastion_cache_operations_total",
    "Cache reads by result (hit, miss) and failed calls (error).",
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Loop lag worth telling apart: from "fine" (<1 ms) to "every deadline fires" (>=50 ms).
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def multiprocess_enabled() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


class Metrics:
    """All of bastion's series, on their own registry (one per app, so tests can build many)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # See the module's doc: the library comes in with the first Metrics.
        from prometheus_client import (  # noqa: PLC0415
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
        )

        from bastion.ops._series import PlainCounter, RequestSeries  # noqa: PLC0415

        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self._fast = not multiprocess_enabled()
        if self._fast:
            # One process: plain counts folded into Prometheus families at scrape time
            # (bastion.ops._series), so the request path takes no lock and no detour.
            self.request_series: RequestSeries | None = RequestSeries(
                REQUESTS, DURATION, REQUEST_LABELS, LATENCY_BUCKETS
            )
            r.register(self.request_series)
        else:
            # Several processes: prometheus_client's shared files are how their counts meet.
            self.request_series = None
            self.requests = Counter(*REQUESTS, REQUEST_LABELS, registry=r)
            self.latency = Histogram(*DURATION, REQUEST_LABELS, buckets=LATENCY_BUCKETS, registry=r)
        self.csrf_rejections = Counter(
            "bastion_csrf_rejections_total",
            "Unsafe requests refused by CSRF.",
            ["reason"],
            registry=r,
        )
        self.host_rejections = Counter(
            "bastion_host_rejections_total",
            "Requests refused by the Host check.",
            ["reason"],
            registry=r,
        )
        self.rate_limit_hits = Counter(
            "bastion_rate_limit_hits_total",
            "Attempts refused by a rate limit.",
            ["limiter"],
            registry=r,
        )
        self.limiter_fallbacks = Counter(
            "bastion_rate_limit_fallbacks_total",
            "Rate-limit decisions taken by the local fallback because Valkey failed.",
            ["limiter"],
            registry=r,
        )
        self.sign_in_failures = Counter(
            "bastion_sign_in_failures_total", "Failed sign-ins by reason.", ["reason"], registry=r
        )
        self.password_resets = Counter(
            "bastion_password_resets_total",
            "Password-reset requests and confirmations by outcome (see bastion.auth._resets).",
            ["outcome"],
            registry=r,
        )
        self.cache_events: PlainCounter | Counter
        if self._fast:
            self.cache_events = PlainCounter(*CACHE_EVENTS, ["result"])
            r.register(self.cache_events)
        else:
            self.cache_events = Counter(*CACHE_EVENTS, ["result"], registry=r)
        self.breaker_state = Gauge(
            "bastion_cache_breaker_state",
            "Cache circuit breaker: 0 closed, 1 half-open, 2 open.",
            ["breaker"],
            registry=r,
            multiprocess_mode="max",
        )
        self.database_errors = Counter(
            "bastion_database_unavailable_total",
            "Requests answered 503 because the database was unavailable.",
            registry=r,
        )
        self.health_checks = Counter(
            "bastion_health_checks_total", "Health checks by outcome.", ["outcome"], registry=r
        )
        self.loop_lag = Histogram(
            "bastion_event_loop_lag_seconds",
            "How late the event loop ran a timer due every 100 ms (see bastion.ops._looplag).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.sessions_revoked = Counter(
            "bastion_sessions_revoked_total",
            "Sessions ended for their user other than by signing out, by reason "
            "(ended, others, and the password change and reset).",
            ["reason"],
            registry=r,
        )
        self.second_factor = Counter(
            "bastion_second_factor_total",
            "Second factors by method (totp, backup_code, passkey) and outcome (succeeded, "
            "failed, enabled, disabled, ...).",
            ["method", "outcome"],
            registry=r,
        )
        self.emails = Counter(
            "bastion_emails_total",
            "Messages by outcome: sent (SMTP accepted), failed (an attempt raised; the job "
            "retries), dropped (production without EMAIL_URL), console (development).",
            ["outcome"],
            registry=r,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    # Hooks -----------------------------------------------------------------

    def on_reject(self, kind: str, reason: str) -> None:
        """The envelope's ``on_reject``."""
        if kind == "csrf":
            self.csrf_rejections.labels(reason).inc()
        else:
            self.host_rejections.labels(reason).inc()

    def on_rate_limit(self, event: str) -> None:
        """The sign-in limiter's ``on_event``: "hit" or "fallback"."""
        if event == "hit":
            self.rate_limit_hits.labels("sign_in").inc()
        elif event == "fallback":
            self.limiter_fallbacks.labels("sign_in").inc()

    def on_sign_up_limit(self, event: str) -> None:
        """The sign-up limiter's ``on_event``: the same series, ``limiter="sign_up"``."""
        if event == "hit":
            self.rate_limit_hits.labels("sign_up").inc()
        elif event == "fallback":
            self.limiter_fallbacks.labels("sign_up").inc()

    def on_reset_limit(self, event: str) -> None:
        """The password-reset limiter's ``on_event``: ``limiter="password_reset"``."""
        if event == "hit":
            self.rate_limit_hits.labels("password_reset").inc()
        elif event == "fallback":
            self.limiter_fallbacks.labels("password_reset").inc()

    def on_password_reset(self, outcome: str) -> None:
        """The accounts' events: one outcome of a reset request or confirmation."""
        self.password_resets.labels(outcome).inc()

    def on_cache(self, event: str) -> None:
        """The cache's ``on_event``: "hit", "miss" or "error"."""
        events = self.cache_events
        if self._fast:  # a PlainCounter (see __init__)
            cast("PlainCounter", events).inc((event,))
        else:
            cast("Counter", events).labels(event).inc()

    def on_breaker(self, name: str) -> Callable[[BreakerState], None]:
        """A breaker listener that mirrors its state into the gauge."""
        gauge = self.breaker_state.labels(name)
        gauge.set(BreakerState.CLOSED)

        def listener(state: BreakerState) -> None:
            gauge.set(int(state))

        return listener

    def on_loop_lag(self, seconds: float) -> None:
        """The loop-lag monitor's ``on_sample``."""
        self.loop_lag.observe(seconds)

    def on_email(self, outcome: str) -> None:
        """bastion.mail's listener: counted in the process that sent (``set_mail_listener``)."""
        self.emails.labels(outcome).inc()

    def on_sign_in_failure(self, reason: str) -> None:
        self.sign_in_failures.labels(reason).inc()

    def on_sessions_revoked(self, reason: str, count: int) -> None:
        """The accounts' events (:class:`~bastion.auth.AccountEvents`): sessions ended."""
        self.sessions_revoked.labels(reason).inc(count)

    def on_second_factor(self, method: str, outcome: str) -> None:
        """The accounts' events: a second factor used, failed, enabled or disabled."""
        self.second_factor.labels(method, outcome).inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its duration; called once per request, so kept short.

        In one process this is :meth:`bastion.ops._series.RequestSeries.observe`: a dict lookup, a
        bisect and three additions. In multiprocess mode, ``labels()`` (which
        validates, joins and looks up its arguments under a lock) runs once per
        (route, method, status) and the pair of children is kept; the three
        labels come from small fixed sets, and past ``_MAX_CACHED`` entries the
        dict stops growing, as a guard.
        """
        series = self.request_series
        if series is not None:
            series.observe(route, method, status, seconds)
            return
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            code = str(status)
            children = (
                self.requests.labels(route, method, code),
                self.latency.labels(route, method, code),
            )
            if len(self._request_children) < _MAX_CACHED:
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    # Exposition --------------------------------------------------------------

    def render(self) -> bytes:
        """The text format: this registry, or every worker's samples in multiprocess mode."""
        from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        if multiprocess_enabled():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)
