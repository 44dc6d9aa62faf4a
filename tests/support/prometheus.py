"""Debian's Prometheus on loopback, and the shipped rules and dashboard as the tests read them.

The live test (tests/integration/monitoring/) runs the rules of
``deploy/prometheus/rules.yml`` on a real Prometheus. Production evaluates
them every 15 s over windows of minutes; a test cannot wait that long, so it
runs a copy with every duration divided by one factor, :data:`TIME_FACTOR`:
the scrape and evaluation intervals, each alert's ``for:``, and every
duration inside an expression (range windows ``[5m]`` and ``offset 5m``).
Nothing else changes: thresholds are rates per second or ratios, which mean
the same at any time scale, so the faults the test makes must really cross them.

:func:`selectors` is a small reader of PromQL, enough to list the metric
names and labels an expression uses, so a test can hold them against a real
scrape (promtool 2.42 has no command that prints a parsed expression).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import json
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.servers import ROOT, free_port, terminate

__all__ = [
    "DASHBOARD",
    "RULES",
    "TIME_FACTOR",
    "PrometheusServer",
    "Selector",
    "dashboard_queries",
    "load_rules",
    "rule_expressions",
    "scale_rules",
    "scaled",
    "seconds",
    "selectors",
]

RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "bastion.json"

#: Every duration of the rules is divided by this in the live test: 15 s -> 0.5 s, 5m -> 10 s.
TIME_FACTOR = 30

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION = r"(?:\d+(?:ms|s|m|h|d|w|y))+"


def seconds(duration: str) -> float:
    """A Prometheus duration (``1h30m``, ``500ms``) in seconds."""
    parts = _PART.findall(duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def scaled(duration: str, factor: float = TIME_FACTOR) -> str:
    """``duration`` divided by ``factor``, in whole milliseconds (at least 1)."""
    return f"{max(1, round(seconds(duration) * 1000 / factor))}ms"


def _scale_expr(expr: str, factor: float) -> str:
    expr = re.sub(rf"\[({_DURATION})\]", lambda m: f"[{scaled(m[1], factor)}]", expr)
    return re.sub(rf"\boffset ({_DURATION})", lambda m: f"offset {scaled(m[1], factor)}", expr)


def scale_rules(rules: dict[str, Any], factor: float = TIME_FACTOR) -> dict[str, Any]:
    """A copy of a rules file's content with every duration divided by ``factor``."""
    result = copy.deepcopy(rules)
    for group in result["groups"]:
        if "interval" in group:
            group["interval"] = scaled(group["interval"], factor)
        for rule in group["rules"]:
            rule["expr"] = _scale_expr(rule["expr"], factor)
            if "for" in rule:
                rule["for"] = scaled(rule["for"], factor)
    return result


def load_rules() -> dict[str, Any]:
    rules: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return rules


def rule_expressions() -> dict[str, str]:
    """Every rule's name (``record`` or ``alert``) -> its expression."""
    return {
        rule.get("record") or rule["alert"]: rule["expr"]
        for group in load_rules()["groups"]
        for rule in group["rules"]
    }


def dashboard_queries(rate_interval: str = "5m") -> dict[str, list[str]]:
    """Each panel's title -> its queries, with Grafana's ``$__rate_interval`` filled in."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries: dict[str, list[str]] = {}
    for panel in dashboard["panels"]:
        targets = panel.get("targets", [])
        if targets:
            queries[panel["title"]] = [
                target["expr"].replace("$__rate_interval", rate_interval) for target in targets
            ]
    return queries


# --- reading PromQL -------------------------------------------------------------------

#: Words that are not metric names where they stand.
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
#: Aggregations, which may be followed by a ``by (...)`` before their parenthesis.
_AGGREGATIONS = {
    "sum", "min", "max", "avg", "count", "group", "stddev", "stdvar",
    "topk", "bottomk", "quantile", "count_values",
}  # fmt: skip
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
      | (?P<number>\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*)
      | (?P<op>=~|!~|!=|==|>=|<=|[{}()\[\],=<>+\-*/^%@])
      | (?P<space>\s+)""",
    re.X,
)


@dataclass
class Selector:
    """One metric selector: ``name{label op "value", ...}``."""

    name: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Parsed:
    selectors: list[Selector]
    #: Labels named in ``by``, ``without``, ``on``, ``ignoring`` and ``group_*`` clauses.
    grouping: set[str]


def _tokens(expr: str) -> Iterator[tuple[str, str]]:
    position = 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        assert match is not None, f"cannot read {expr[position:]!r}"
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            yield kind, match[0]


def selectors(expr: str) -> Parsed:
    """The metric selectors and the grouping labels of a PromQL expression."""
    tokens = list(_tokens(expr))
    found: list[Selector] = []
    grouping: set[str] = set()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if text == "[":  # a range or a subquery: durations only
            while tokens[index][1] != "]":
                index += 1
        elif kind == "name" and text in _GROUPING:
            if following == "(":
                index += 2
                while tokens[index][1] != ")":
                    if tokens[index][0] == "name":
                        grouping.add(tokens[index][1])
                    index += 1
        elif (
            kind == "name"
            and text.lower() not in _KEYWORDS
            and text not in _AGGREGATIONS
            and following != "("
        ):
            selector = Selector(text)
            if following == "{":
                index += 2
                while tokens[index][1] != "}":
                    label, op, value = tokens[index][1], tokens[index + 1][1], tokens[index + 2][1]
                    selector.matchers.append((label, op, json.loads(value)))
                    index += 3
                    if tokens[index][1] == ",":
                        index += 1
            found.append(selector)
        index += 1
    return Parsed(found, grouping)


# --- the server ---------------------------------------------------------------------------


class PrometheusServer:
    """``prometheus`` (Debian's 2.42) on a free loopback port, with its data in ``directory``."""

    def __init__(self, directory: Path, config: dict[str, Any], rules: dict[str, Any]) -> None:
        self.directory = directory
        self.config = {**config, "rule_files": ["rules.yml"]}
        self.rules = rules
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        (self.directory / "prometheus.yml").write_text(yaml.safe_dump(self.config))
        (self.directory / "rules.yml").write_text(yaml.safe_dump(self.rules, sort_keys=False))
        atexit.register(self.stop)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={self.directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"prometheus did not start:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _get(self, path: str, **params: str) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get("/api/v1/query", query=expr)["result"]
        return result

    def query_range(self, expr: str, start: float, end: float, step: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._get(
            "/api/v1/query_range", query=expr, start=str(start), end=str(end), step=step
        )["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """The active alerts (pending or firing); a resolved alert is no longer listed."""
        alerts: list[dict[str, Any]] = self._get("/api/v1/alerts")["alerts"]
        return alerts

    def firing(self) -> set[str]:
        return {a["labels"]["alertname"] for a in self.alerts() if a["state"] == "firing"}

    def stop(self) -> None:
        terminate(self.process, 10)
        self.process = None
