"""The shipped alerts on Debian's Prometheus, against two real instances and real faults.

One stack serves every test here, in file order: PostgreSQL, Valkey, a job
worker, two instances of the example app under uvicorn, ordinary traffic to
both (pages, health probes, cache reads, sign-ins, jobs), and Prometheus
scraping them with ``deploy/prometheus/rules.yml``. The rules run with every
duration divided by :data:`tests.support.prometheus.TIME_FACTOR` (the scrape
and evaluation intervals, ``for:``, range windows and offsets; thresholds are
untouched), so a 5-minute window is 10 s here and each fault must really
cross the shipped threshold.

The faults come one after another on the same stack: a failed-sign-in wave,
Valkey killed, PostgreSQL stopped, an instance killed. For each, the test
waits until its alert is ``firing`` in ``/api/v1/alerts``, removes the fault,
and waits until the alert is gone. Along the way it keeps scrapes of the
instances, so that the metric names and labels the rules and the dashboard
use are held against what a real instance exposes after every kind of
request; and it runs every dashboard query over the whole run.

A ``monitoring`` test (tests/support/kinds.py), not a ``load`` one: it
asserts no speed, and spends its minute and a half waiting on alerts, so it
runs beside the other workers rather than holding the machine. The scaled
windows hold several scrapes each, so a busy machine that delays a scrape
does not move an alert (it passed with the load average at 13 on 2 cores).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.postgres import PostgresServer, unique_database_name
from tests.support.prometheus import (
    TIME_FACTOR,
    PrometheusServer,
    dashboard_queries,
    load_rules,
    rule_expressions,
    scale_rules,
    scaled,
    seconds,
    selectors,
)
from tests.support.servers import ROOT, AppServer, ValkeyServer, run_cli
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

ADMIN = ("ops@example.com", "a long enough password 42")
#: Generous bounds on "until the alert fires / resolves": the expected times are a few seconds.
FIRES_WITHIN = 45.0
RESOLVES_WITHIN = 45.0
#: Grafana's $__rate_interval: four scrape intervals.
RATE_INTERVAL = scaled("1m")

Samples = dict[str, dict[str, set[str]]]


def _addresses() -> Iterator[str]:
    """A new client address per call: sign-ins from many people, as in real traffic."""
    for n in itertools.count(1):
        yield f"198.51.{(n // 250) % 250}.{n % 250 + 1}"


class Traffic(threading.Thread):
    """Ordinary requests to every instance until stopped: pages, probes, cache, sign-ins."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.stopped = threading.Event()
        self.addresses = _addresses()
        self._lock = threading.Lock()
        self._statuses: dict[int, int] = {}

    @property
    def statuses(self) -> dict[int, int]:
        """How many answers of each status the traffic has had so far."""
        with self._lock:
            return dict(self._statuses)

    def run(self) -> None:
        email, password = ADMIN
        with httpx.Client(timeout=3) as client:
            for turn in itertools.count():
                if self.stopped.wait(0.2):
                    return
                for url in self.urls:
                    with contextlib.suppress(httpx.HTTPError):
                        responses = [
                            client.get(url + "/"),
                            client.get(url + "/api/health"),
                            client.get(url + "/api/sandbox/cache/counter"),
                            client.put(
                                url + "/api/sandbox/cache/counter",
                                json={"value": 1, "ttl": 60},
                                headers={"Origin": url},
                            ),
                        ]
                        if turn % 5 == 0:
                            responses.append(
                                client.post(
                                    url + "/api/auth/sign-in",
                                    json={"email": email, "password": password},
                                    headers={
                                        "Origin": url,
                                        "X-Forwarded-For": next(self.addresses),
                                    },
                                )
                            )
                        with self._lock:
                            for response in responses:
                                code = response.status_code
                                self._statuses[code] = self._statuses.get(code, 0) + 1

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)


@dataclass
class Stack:
    prometheus: PrometheusServer
    apps: list[AppServer]
    valkey: ValkeyServer
    postgres: PostgresServer
    worker: WorkerProcess
    traffic: Traffic
    started: float
    #: Scrapes of the instances, taken when each kind of series had reason to exist.
    scrapes: list[str] = field(default_factory=list)

    def scrape(self) -> None:
        for app in self.apps:
            if app.process is not None:
                self.scrapes.append(httpx.get(app.url + "/api/metrics", timeout=5).text)

    def wait_firing(self, alert: str) -> dict[str, Any]:
        def firing() -> dict[str, Any] | bool:
            active = self.prometheus.alerts()
            for item in active:
                if item["labels"]["alertname"] == alert and item["state"] == "firing":
                    found: dict[str, Any] = item
                    return found
            return False

        result: dict[str, Any] = wait_for(firing, FIRES_WITHIN, f"{alert} firing", every=0.25)
        return result

    def wait_resolved(self, alert: str) -> None:
        wait_for(
            lambda: all(a["labels"]["alertname"] != alert for a in self.prometheus.alerts()),
            RESOLVES_WITHIN,
            f"{alert} resolved",
            every=0.25,
        )


def live_config(targets: list[str]) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scaled, scraping ``targets`` instead of compose's DNS."""
    config: dict[str, Any] = yaml.safe_load(
        (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    )
    interval = scaled(config["global"]["scrape_interval"])
    config["global"] = {
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "evaluation_interval": scaled(config["global"]["evaluation_interval"]),
    }
    config.pop("alerting")
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "bastion"]
    job.pop("dns_sd_configs")
    job["static_configs"] = [{"targets": targets}]
    config["scrape_configs"] = [job]
    return config


@pytest.fixture(scope="module")
def stack(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if not postgres_server.running:
        postgres_server.start()
    database = unique_database_name("monitoring")
    url = postgres_server.create_database(database)
    valkey = ValkeyServer().start()
    env = {
        "DATABASE_URL": url,
        "VALKEY_URL": valkey.url,
        "METRICS_ENABLED": "true",
        "JOBS_ENABLED": "true",
        "PASSWORD_HASH_PROFILE": "cheapest",
        # A breaker that tries Valkey again after 1 s, so recovery shows quickly.
        "CACHE_BREAKER_COOLDOWN_MS": "1000",
        "DATABASE_TIMEOUT_MS": "500",
        # The ordinary traffic signs one account in about once a second; the
        # per-client limit (10 a minute) stays as shipped.
        "SIGN_IN_ACCOUNT_RATE_LIMIT": "1000/minute",
    }
    migrated = run_cli("migrate", env={**os.environ, "DATABASE_URL": url, "JOBS_ENABLED": "true"})
    assert migrated.returncode == 0, migrated.stderr
    worker = WorkerProcess(
        {**os.environ, "DATABASE_URL": url, "JOBS_ENABLED": "true"}, "--concurrency", "1"
    ).start()
    # Two interpreters starting at a time at most, so a busy machine still starts them in time.
    with ThreadPoolExecutor(1) as pool:
        creating = pool.submit(
            run_cli,
            "createuser",
            "--email",
            ADMIN[0],
            env={**os.environ, "DATABASE_URL": url, "PASSWORD_HASH_PROFILE": "cheapest"},
            stdin=ADMIN[1] + "\n",
        )
        first = AppServer(env).start(migrate=False)
        created = creating.result()
    assert created.returncode == 0, created.stderr
    second = AppServer(env).start(migrate=False)
    apps = [first, second]
    directory = tmp_path_factory.mktemp("prometheus")
    prometheus = PrometheusServer(
        directory,
        live_config([f"127.0.0.1:{app.port}" for app in apps]),
        scale_rules(load_rules(), TIME_FACTOR),
    ).start()
    traffic = Traffic([app.url for app in apps])
    traffic.start()
    stack = Stack(prometheus, apps, valkey, postgres_server, worker, traffic, time.time())
    try:
        yield stack
    finally:
        traffic.stop()
        prometheus.stop()
        for app in apps:
            app.stop()
        worker.stop(10)
        worker.close()
        valkey.close()
        if not postgres_server.running:
            postgres_server.start()
        postgres_server.drop_database(database)


def test_healthy_traffic_fires_no_alert(stack: Stack) -> None:
    prometheus = stack.prometheus
    first = stack.apps[0].url
    # Jobs: one runs for 8 s on the single worker slot, so the next one waits
    # and the queue's gauges have something to say.
    for options in ({"seconds": 8}, {}):
        response = httpx.post(
            first + "/api/sandbox/jobs", json=options, headers={"Origin": first}, timeout=10
        )
        assert response.status_code == 201, response.text
    waiting = wait_for(
        lambda: (
            (text := httpx.get(first + "/api/metrics", timeout=5).text)
            and "bastion_jobs_oldest_waiting_seconds{" in text
            and text
        ),
        20,
        "a waiting job in the metrics",
    )
    stack.scrapes.append(waiting)
    # Ordinary traffic for as long as the longest `for:` of the rules (10 scaled minutes).
    longest = max(
        seconds(r["for"]) for g in load_rules()["groups"] for r in g["rules"] if "for" in r
    )
    until = stack.started + longest / TIME_FACTOR + 1
    while time.time() < until:
        assert prometheus.firing() == set(), prometheus.alerts()
        time.sleep(0.5)
    assert prometheus.firing() == set(), prometheus.alerts()
    # ... and that is not because nothing was evaluated: both targets are up,
    # every rule evaluates without error, and the recording rules have values.
    up = {r["metric"]["instance"]: r["value"][1] for r in prometheus.query('up{job="bastion"}')}
    assert len(up) == 2, up
    assert set(up.values()) == {"1"}, up
    groups = httpx.get(prometheus.url + "/api/v1/rules", timeout=5).json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) == len(rule_expressions())
    assert [(r["name"], r["lastError"]) for r in rules if r["health"] != "ok"] == []
    assert prometheus.query("job:bastion_http_requests:rate5m > 0")
    assert prometheus.query("job:bastion_cache_hits:ratio_rate5m > 0")
    assert stack.traffic.statuses.get(200, 0) > 0
    assert set(stack.traffic.statuses) <= {200, 204}, stack.traffic.statuses
    stack.scrape()


def test_a_failed_sign_in_wave_fires_and_resolves(stack: Stack) -> None:
    stop = threading.Event()

    def wave() -> None:
        # Many addresses, many unknown accounts: no per-client limit holds it back.
        with httpx.Client(timeout=3) as client:
            for n in itertools.count():
                if stop.wait(0.1):
                    return
                url = stack.apps[n % 2].url
                with contextlib.suppress(httpx.HTTPError):
                    client.post(
                        url + "/api/auth/sign-in",
                        json={"email": f"victim{n}@example.com", "password": "password123 guess"},
                        headers={"Origin": url, "X-Forwarded-For": "203.0.113." + str(n % 250)},
                    )

    thread = threading.Thread(target=wave, daemon=True)
    thread.start()
    try:
        alert = stack.wait_firing("BastionSignInFailuresHigh")
    finally:
        stop.set()
        thread.join(10)
    assert alert["labels"] == {
        "alertname": "BastionSignInFailuresHigh",
        "job": "bastion",
        "severity": "warning",
    }
    assert alert["annotations"]["runbook"] == "deploy/README.md#bastionsigninfailureshigh"
    # The limiter's own refusals, and the envelope's: one client over its limit,
    # a cross-site POST, a foreign Host. One of each kind, so no spike alert.
    url = stack.apps[0].url
    statuses = [
        httpx.post(
            url + "/api/auth/sign-in",
            json={"email": "someone@example.com", "password": "password123 guess"},
            headers={"Origin": url, "X-Forwarded-For": "192.0.2.77"},
            timeout=5,
        ).status_code
        for _ in range(11)
    ]
    assert statuses[-1] == 429, statuses
    assert (
        httpx.post(
            url + "/api/auth/sign-in", headers={"Origin": "https://evil.example"}, timeout=5
        ).status_code
        == 403
    )
    assert httpx.get(url + "/", headers={"Host": "evil.example"}, timeout=5).status_code == 400
    stack.scrape()
    stack.wait_resolved("BastionSignInFailuresHigh")


def test_valkey_killed_opens_the_breaker_then_limits_go_local(stack: Stack) -> None:
    stack.valkey.kill()
    try:
        breaker = stack.wait_firing("BastionCacheBreakerOpen")
        assert breaker["labels"]["severity"] == "warning"
        assert breaker["labels"]["breaker"] in {"valkey", "ratelimit"}
        # The ordinary traffic signs in twice a second per instance: decided locally now.
        local = stack.wait_firing("BastionRateLimitLocal")
        assert local["labels"]["limiter"] == "sign_in"
        assert local["annotations"]["runbook"] == "deploy/README.md#bastionratelimitlocal"
        stack.scrape()
    finally:
        stack.valkey.start()
    stack.wait_resolved("BastionCacheBreakerOpen")
    stack.wait_resolved("BastionRateLimitLocal")


def test_postgresql_stopped_fires_database_unavailable(stack: Stack) -> None:
    stack.postgres.stop()
    try:
        alert = stack.wait_firing("BastionDatabaseUnavailable")
        assert alert["labels"]["severity"] == "critical"
        assert alert["labels"]["instance"] in {f"127.0.0.1:{app.port}" for app in stack.apps}
        stack.scrape()
    finally:
        stack.postgres.start()
    stack.wait_resolved("BastionDatabaseUnavailable")


def known_names() -> set[str]:
    return {
        rule.get("record") or rule["alert"] for g in load_rules()["groups"] for rule in g["rules"]
    }


def parse_scrapes(texts: list[str]) -> Samples:
    samples: Samples = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = samples.setdefault(sample.name, {})
                for label, value in sample.labels.items():
                    labels.setdefault(label, set()).add(value)
    return samples


def problems(expr: str, samples: Samples) -> list[str]:
    """What in ``expr`` a real scrape does not have: a metric, a label or a label value."""
    found: list[str] = []
    parsed = selectors(expr)
    target_labels = {"job", "instance"}
    every_label = {label for labels in samples.values() for label in labels} | target_labels
    for selector in parsed.selectors:
        if ":" in selector.name:
            if selector.name not in known_names():
                found.append(f"{selector.name}: no rule records it")
            continue
        if selector.name == "up":  # Prometheus's own series for each target
            continue
        labels = samples.get(selector.name)
        if labels is None:
            found.append(f"{selector.name}: not in /api/metrics")
            continue
        for label, op, value in selector.matchers:
            if label in target_labels:
                continue
            values = labels.get(label)
            if values is None:
                found.append(f"{selector.name}: no label {label}")
            elif op in ("=", "!=") and value and value not in values:
                found.append(f"{selector.name}: no {label}={value!r} (seen {sorted(values)})")
            elif op in ("=~", "!~") and not any(re.fullmatch(value, v) for v in values):
                found.append(f"{selector.name}: nothing matches {label}=~{value!r}")
    found += [f"grouping label {label}: in no series" for label in parsed.grouping - every_label]
    return found


def test_every_metric_and_label_of_the_rules_and_dashboard_is_in_a_real_scrape(
    stack: Stack,
) -> None:
    """Renaming a metric, a label or a reason without the rules and the dashboard fails here."""
    stack.scrape()
    samples = parse_scrapes(stack.scrapes)
    expressions = dict(rule_expressions())
    for title, queries in dashboard_queries(RATE_INTERVAL).items():
        for number, query in enumerate(queries):
            expressions[f"dashboard: {title} #{number}"] = query
    report = {
        name: found for name, expr in expressions.items() if (found := problems(expr, samples))
    }
    assert report == {}
    # The check can fail: a renamed metric and a renamed reason are caught.
    assert problems('rate(bastion_cache_operations_total{result="hits"}[1m])', samples)
    assert problems("rate(bastion_sign_in_failure_total[1m])", samples)


def test_every_dashboard_query_has_data(stack: Stack) -> None:
    empty = [
        f"{title}: {query}"
        for title, queries in dashboard_queries(RATE_INTERVAL).items()
        for query in queries
        if not stack.prometheus.query_range(query, stack.started, time.time(), "1s")
    ]
    assert empty == []


def test_an_instance_killed_fires_target_down_and_resolves(stack: Stack) -> None:
    victim = stack.apps[1]
    assert victim.process is not None
    victim.process.kill()
    victim.process.wait(10)
    try:
        alert = stack.wait_firing("BastionTargetDown")
        assert alert["labels"]["instance"] == f"127.0.0.1:{victim.port}"
        assert alert["labels"]["severity"] == "critical"
    finally:
        victim.process = None
        victim.start(migrate=False)
    stack.wait_resolved("BastionTargetDown")
