"""The jobs' Prometheus series, on the app's registry (``Metrics.registry``).

Kept apart from :mod:`bastion.ops._metrics` so the jobs engine owns its
series. Counters are counted where a job runs (the app in inline mode, the
worker process otherwise); the queue's state (depth, oldest waiting job,
jobs by status, worker heartbeats) is sampled from the database by the app
every few seconds, so an app's scrape shows what its workers did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # Made only with the app's Metrics, which has imported prometheus_client already.
        from prometheus_client import Counter, Gauge  # noqa: PLC0415

        r = registry
        self.deferred = Counter(
            "bastion_jobs_deferred_total", "Jobs deferred, by task.", ["task"], registry=r
        )
        self.succeeded = Counter(
            "bastion_jobs_succeeded_total",
            "Job runs that succeeded, by task.",
            ["task"],
            registry=r,
        )
        self.failed = Counter(
            "bastion_jobs_failed_total",
            "Job runs that failed with no retry left, by task.",
            ["task"],
            registry=r,
        )
        self.retried = Counter(
            "bastion_jobs_retried_total",
            "Job runs that failed and will be retried, by task.",
            ["task"],
            registry=r,
        )
        self.waiting = Gauge(
            "bastion_jobs_waiting",
            "Jobs due and waiting for a worker, by queue.",
            ["queue"],
            registry=r,
            multiprocess_mode="max",
        )
        self.oldest_waiting = Gauge(
            "bastion_jobs_oldest_waiting_seconds",
            "Age of the oldest job due and waiting, by queue.",
            ["queue"],
            registry=r,
            multiprocess_mode="max",
        )
        self.jobs = Gauge(
            "bastion_jobs",
            "Jobs in the queue by task and status.",
            ["task", "status"],
            registry=r,
            multiprocess_mode="max",
        )
        self.heartbeat_age = Gauge(
            "bastion_jobs_worker_heartbeat_age_seconds",
            "Seconds since each live worker's last heartbeat.",
            ["worker"],
            registry=r,
            multiprocess_mode="max",
        )
        # Without it "no worker" cannot be told from "no worker needed": inline
        # jobs run in the app and have no worker (and no heartbeat series) at all.
        self.enabled = Gauge(
            "bastion_jobs_enabled",
            "1 when jobs wait in PostgreSQL for a `bastion worker` (JOBS_ENABLED), 0 when inline.",
            registry=r,
            multiprocess_mode="max",
        )
        self.workers = Gauge(
            "bastion_jobs_workers",
            "Workers with a heartbeat in the database.",
            registry=r,
            multiprocess_mode="max",
        )
