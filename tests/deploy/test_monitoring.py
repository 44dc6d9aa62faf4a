"""The monitoring files, checked by the tools that read them: promtool, amtool, and a JSON reader.

``promtool test rules`` runs every case of ``deploy/prometheus/rules.test.yml``
(each alert fires on its fault and stays quiet on a close non-fault); the
tests here also hold the files to what the issue and the README promise:
every alert carries its ``for:``, severity, summary, description and a
runbook that exists, every threshold is named in deploy/README.md, and the
dashboard's panels read Prometheus through the datasource variable. That the
alerts fire on a real fault is tests/integration/monitoring/test_live.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.prometheus import DASHBOARD, RULES, load_rules, scale_rules, selectors
from tests.support.servers import ROOT

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTMANAGER = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
DEPLOY_README = ROOT / "deploy" / "README.md"

ALERTS = {
    "BastionTargetDown",
    "BastionDatabaseUnavailable",
    "BastionCacheBreakerOpen",
    "BastionRateLimitLocal",
    "BastionSignInFailuresHigh",
    "BastionSignInBlockedHigh",
    "BastionHigh5xxRatio",
    "BastionEventLoopLag",
    "BastionJobsStalled",
    "BastionCSRFRejectionsSpike",
    "BastionHostRejectionsSpike",
}


def run(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def alerts() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule
        for group in load_rules()["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_promtool_checks_the_rules() -> None:
    done = run("promtool", "check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_runs_the_rule_unit_tests() -> None:
    done = run("promtool", "test", "rules", "rules.test.yml", cwd=PROMETHEUS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_unit_tests_fail_when_a_threshold_moves(tmp_path: Path) -> None:
    """A rules file with the 5xx threshold halved fails its tests: they pin the numbers."""
    shutil.copy(PROMETHEUS_DIR / "rules.test.yml", tmp_path)
    text = RULES.read_text().replace("expr: vector(0.05)", "expr: vector(0.025)")
    (tmp_path / "rules.yml").write_text(text)
    done = run("promtool", "test", "rules", "rules.test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "BastionHigh5xxRatio" in done.stdout + done.stderr


def test_promtool_checks_the_compose_prometheus_config() -> None:
    done = run("promtool", "check", "config", "prometheus.yml", cwd=PROMETHEUS_DIR)
    assert done.returncode == 0, done.stdout + done.stderr


def test_amtool_checks_the_alertmanager_example() -> None:
    done = run("amtool", "check-config", str(ALERTMANAGER))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    config = yaml.safe_load(ALERTMANAGER.read_text())
    kinds = {key for receiver in config["receivers"] for key in receiver if key != "name"}
    assert kinds == {"webhook_configs", "email_configs"}


def test_every_named_alert_is_there_with_what_an_operator_needs() -> None:
    found = alerts()
    assert set(found) == ALERTS
    readme = DEPLOY_README.read_text()
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", readme, re.M)
    }
    for name, rule in found.items():
        assert rule["for"], name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert "look first" in rule["annotations"]["description"].lower(), name
        page, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert page == "deploy/README.md", name
        assert anchor in anchors, f"{name}: no section #{anchor} in deploy/README.md"


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = yaml.safe_load((PROMETHEUS_DIR / "rules.test.yml").read_text())["tests"]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
            for alert in check["exp_alerts"]:
                assert {"summary", "description", "runbook"} <= set(alert["exp_annotations"])
                assert "severity" in alert["exp_labels"]
    assert fired == ALERTS
    assert quiet == ALERTS
    checked = {
        name
        for case in cases
        for test in case.get("promql_expr_test", [])
        for name in re.findall(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", test["expr"])
    }
    recorded = {
        rule["record"]
        for group in load_rules()["groups"]
        for rule in group["rules"]
        if "record" in rule and not rule["record"].startswith("bastion:threshold:")
    }
    assert recorded - checked == set()


def test_every_threshold_is_one_constant_named_in_the_deploy_readme() -> None:
    readme = DEPLOY_README.read_text()
    [group] = [g for g in load_rules()["groups"] if g["name"] == "bastion.thresholds"]
    assert group["rules"]
    for rule in group["rules"]:
        assert rule["record"].startswith("bastion:threshold:")
        assert re.fullmatch(r"vector\([0-9.]+\)", rule["expr"]), rule
        assert f"`{rule['record']}`" in readme, rule["record"]
    # Alerts compare with the constants, never with a number of their own.
    for name, rule in alerts().items():
        numbers = re.findall(r"[<>]=?\s*(\d+(?:\.\d+)?)", rule["expr"])
        assert set(numbers) <= {"0", "1"}, f"{name} compares with a literal: {numbers}"


def test_the_live_scaling_changes_durations_only() -> None:
    rules = load_rules()
    fast = scale_rules(rules, 30)
    for group, scaled_group in zip(rules["groups"], fast["groups"], strict=True):
        for rule, scaled_rule in zip(group["rules"], scaled_group["rules"], strict=True):
            assert set(rule) == set(scaled_rule)
            if "for" in rule:
                assert rule["for"] != scaled_rule["for"]
            # Strip durations: what is left is the same expression.
            strip = re.compile(r"\[[0-9a-z]+\]|offset [0-9a-z]+")
            assert strip.sub("", rule["expr"]) == strip.sub("", scaled_rule["expr"])
            assert rule.get("labels") == scaled_rule.get("labels")
            assert rule.get("annotations") == scaled_rule.get("annotations")
    [failures] = [
        r
        for g in fast["groups"]
        for r in g["rules"]
        if r.get("alert") == "BastionSignInFailuresHigh"
    ]
    assert failures["for"] == "4000ms"
    [before] = [
        r
        for g in fast["groups"]
        for r in g["rules"]
        if r.get("record") == "job:bastion_sign_in_failures:rate1h_before"
    ]
    assert "[120000ms] offset 10000ms" in before["expr"]


def test_the_dashboard_reads_prometheus_through_its_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    [variable] = dashboard["templating"]["list"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    reference = "${" + variable["name"] + "}"
    titles = " / ".join(panel["title"].lower() for panel in dashboard["panels"])
    for topic in (
        "request rate by route",
        "latency by route",
        "csrf",
        "host",
        "rate limit",
        "sign-in failures",
        "blocked",
        "breakers",
        "locally",
        "cache hit ratio",
        "database availability",
        "event-loop lag",
        "jobs",
    ):
        assert topic in titles, topic
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == reference, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == reference, panel["title"]
            expr = target["expr"].replace("$__rate_interval", "5m")
            assert selectors(expr).selectors, target["expr"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (job) (rate(x_total{a="b", c=~"d|e"}[5m] offset 1h))', {"x_total"}),
        (
            "histogram_quantile(0.9, sum by (le) (rate(y_bucket[1m]))) > scalar(t:u:v)",
            {"y_bucket", "t:u:v"},
        ),
        ("a unless on (job) b or vector(1)", {"a", "b"}),
    ],
)
def test_the_promql_reader_finds_the_metric_names(expr: str, names: set[str]) -> None:
    assert {s.name for s in selectors(expr).selectors} == names


def test_the_promql_reader_finds_matchers_and_grouping_labels() -> None:
    parsed = selectors('max by (job, queue) (m{reason!="x"}) > on (job) group_left () n')
    assert parsed.grouping == {"job", "queue"}
    assert [(s.name, s.matchers) for s in parsed.selectors] == [
        ("m", [("reason", "!=", "x")]),
        ("n", []),
    ]
