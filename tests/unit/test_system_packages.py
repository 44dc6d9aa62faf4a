"""The test run's own set-up knows every Debian program the suite runs.

``tests/support/system.py`` installs Chromium, wrk, openssl, Prometheus and
amtool for the tests
that need them. A new test that starts one of them from a folder the set-up
does not list would pass on a developer's machine (where it is installed) and
fail on a fresh one; these tests find such a file by reading the suite.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.system import NEEDED_BY, PACKAGES, ROOT, needed_for

# How a test file shows that it runs a program: directly by name, or through
# the helper that does (harness.wrk, tests.support.load.wrk, Playwright).
USES: dict[str, re.Pattern[str]] = {
    "chromium": re.compile(r"chromium|from playwright"),
    "wrk": re.compile(
        r"[\"']wrk[\"']|from (?:bench|harness)\.wrk import|support\.load import [^\n]*\bwrk\b"
    ),
    "openssl": re.compile(r"[\"']openssl[\"']"),
    # The server, by argv or through tests/support/prometheus.py (not the word: compose names it).
    "prometheus": re.compile(
        r"\[[\"']prometheus[\"'],|support\.prometheus import (?:\([^)]*|[^\n]*)\bPrometheusServer\b"
    ),
    "promtool": re.compile(r"[\"']promtool[\"']"),
    "amtool": re.compile(r"[\"']amtool[\"']"),
}

# Files that only name the programs (the set-up, and the tests of what documents them).
SKIP = {
    "tests/support/system.py",
    "tests/unit/test_system_packages.py",
    "tests/unit/test_readme.py",
    "tests/unit/test_runner.py",
}


def test_every_program_has_a_package_a_user_and_a_pattern() -> None:
    assert set(NEEDED_BY) == set(PACKAGES) == set(USES)
    for prefixes in NEEDED_BY.values():
        for prefix in prefixes:
            assert (ROOT / prefix).exists(), prefix


def test_every_test_that_runs_a_program_is_covered_by_the_set_up() -> None:
    found: dict[str, list[str]] = {program: [] for program in USES}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative in SKIP or relative.startswith("tests/support/"):
            continue
        text = path.read_text()
        for program, pattern in USES.items():
            if pattern.search(text):
                found[program].append(relative)
                assert program in needed_for([path]), (
                    f"{relative} runs {program}, but tests/support/system.py NEEDED_BY does not list it"
                )
    # The scan itself must see the known users, or it proves nothing.
    assert "tests/integration/test_bench_harness.py" in found["wrk"]
    assert any(name.startswith("tests/e2e/") for name in found["chromium"])
    assert "tests/deploy/test_static.py" in found["openssl"]
    assert "tests/deploy/test_monitoring.py" in found["promtool"]
    assert "tests/deploy/test_monitoring.py" in found["amtool"]
    assert any(name.startswith("tests/integration/monitoring/") for name in found["prometheus"])


def test_unit_tests_need_no_program() -> None:
    assert needed_for((ROOT / "tests/unit").rglob("*.py")) == set()


def test_ci_installs_through_the_test_command_not_on_its_own() -> None:
    """.ci/run runs the README's command, so it cannot pass where that command fails."""
    ci = (ROOT / ".ci/run").read_text()
    assert "apt-get" not in ci
    assert "uv run --frozen pytest" in ci
    readme = (ROOT / "README.md").read_text()
    assert "```sh\nuv run pytest\n```" in readme


def test_programs_outside_the_repository_need_nothing() -> None:
    assert needed_for([Path("/tmp/elsewhere/test_x.py")]) == set()
