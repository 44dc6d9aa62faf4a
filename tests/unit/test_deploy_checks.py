"""``bastion check --deploy``: which configurations are flagged, with which stable IDs.

The rules are pure functions of Settings, so most tests build settings from a
controlled environment and look at the IDs. The exit status and the output
formats are tested on the real console script in a child process, with an
environment that holds nothing but what the test sets.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping

import pytest

from bastion.config import ENV_PREFIX, ConfigError, Settings, load_settings
from bastion.deploy import CheckRegistry, CheckResult, CheckSpec, Finding, run_checks
from bastion.deploy import finding as make_finding
from bastion.deploy._checks import CHECKS, admins_without_second_factor, registry, schema_state
from tests.support.imports import modules_loaded_by

GOOD_KEY = "k7Qm2vX9pL4sT8wB1nR6yH3jF5dG0aZc-E_uIoKxVbNqMtWlYs"  # 50 random characters

#: A production deployment that should pass: only W041 (the admin-only sandbox) remains.
GOOD_ENV = {
    "APP_ENV": "production",
    "SECRET_KEY": GOOD_KEY,
    "APP_URL": "https://app.example.com",
    "DATABASE_URL": "postgresql://bastion@db.internal/bastion",
    "JOBS_ENABLED": "true",
    "VALKEY_URL": "valkey+sentinel://s1.internal:26379,s2.internal:26379/bastion",
    "CACHE_COMMAND_TIMEOUT_MS": "50",
    "TRUSTED_PROXIES": "10.0.0.0/8,unix",
    "WEB_CONCURRENCY": "4",
    "METRICS_ENABLED": "true",
    "METRICS_BLOCKED_AT_PROXY": "true",
    "EMAIL_URL": "smtps://bastion:k7Qm2vX9pL4sT8wB@smtp.example.com",
}

#: Everything wrong at once; APP_ENV=development is the only way to keep the dev key.
BAD_ENV = {
    "APP_ENV": "development",
    "APP_URL": "http://app.example.com",
    "ALLOWED_HOSTS": "*",
    "TRUSTED_PROXIES": "0.0.0.0/0",
    "WEB_CONCURRENCY": "3",
    "SESSION_MAX_AGE": str(90 * 24 * 3600),
    "METRICS_ENABLED": "true",
}

BAD_IDS = {
    "bastion.E001",  # the development key
    "bastion.E004",  # APP_ENV
    "bastion.E010",  # http APP_URL (and so no Secure cookie)
    "bastion.E011",  # ALLOWED_HOSTS=*
    "bastion.E012",  # TRUSTED_PROXIES trusts everyone
    "bastion.W020",  # 90-day sessions
    "bastion.W030",  # 3 processes, no Valkey
    "bastion.E040",  # sandbox open to all
    "bastion.W042",  # metrics, proxy block not declared
}


@pytest.fixture(autouse=True)
def _no_settings_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Settings field starts unset, whatever the developer's shell exports."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(ENV_PREFIX + name, raising=False)


def settings_from(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def ids(result: CheckResult) -> set[str]:
    return {finding.id for finding in result.findings}


def check_ids(
    monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str], deploy: bool = True
) -> set[str]:
    return ids(run_checks(settings_from(monkeypatch, env), deploy=deploy))


#: For the console script: GOOD_ENV's database, refused at once (port 1: nothing listens
#: there) rather than after a DNS lookup, and a short database timeout, so that E051's and
#: W060's reads (--deploy) give up in 0.2 s instead of 2 s per run. Neither changes a
#: finding: both are skipped either way, as the run says on stderr (E051 on a real
#: database: tests/integration/db/test_schema.py).
UNREACHABLE_DATABASE = {
    "DATABASE_URL": "postgresql://bastion@127.0.0.1:1/bastion",
    "DATABASE_TIMEOUT_MS": "200",
}


def run_cli(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    if "--deploy" in args:
        env = {**env, **UNREACHABLE_DATABASE}
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", "check", *args],
        env={"PATH": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# -- the registry --------------------------------------------------------------------------


def test_ids_are_stable() -> None:
    """Renumbering breaks scripts and SILENCED_CHECKS: add IDs, never change these."""
    assert list(CHECKS) == [
        "bastion.E001",
        "bastion.E002",
        "bastion.E003",
        "bastion.E004",
        "bastion.W005",
        "bastion.E010",
        "bastion.E011",
        "bastion.E012",
        "bastion.W013",
        "bastion.W014",
        "bastion.W015",
        "bastion.W020",
        "bastion.W021",
        "bastion.W030",
        "bastion.W031",
        "bastion.W032",
        "bastion.W033",
        "bastion.W034",
        "bastion.W042",
        "bastion.W050",
        "bastion.E051",
        "bastion.W060",
        "bastion.W061",
        "bastion.E070",
        "bastion.W080",
    ]
    # The example app registers its own (its sandbox), under the IDs they always had.
    assert list(registry())[len(CHECKS) :] == ["bastion.E040", "bastion.W041"]


def test_the_letter_is_the_level() -> None:
    numbers = set()
    for check_id, spec in registry().items():
        match = re.fullmatch(r"bastion\.([EW])(\d{3})", check_id)
        assert match, check_id
        assert spec.level == {"E": "error", "W": "warning"}[match.group(1)]
        assert match.group(2) not in numbers, f"{check_id}: number reused"
        numbers.add(match.group(2))


# -- the two whole configurations -----------------------------------------------------------


def test_a_bad_configuration_is_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_checks(settings_from(monkeypatch, BAD_ENV), deploy=True)
    assert ids(result) == BAD_IDS
    assert result.failed()
    for finding in result.findings:
        assert finding.level == registry()[finding.id].level
        assert finding.message
        assert finding.hint
        assert "\n" not in finding.message + finding.hint


def test_a_good_production_configuration_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_checks(settings_from(monkeypatch, GOOD_ENV), deploy=True)
    assert result.errors == ()
    assert ids(result) == {"bastion.W041"}  # the sandbox exists, for admins only
    assert not result.failed("error")
    assert result.failed("warning")


def test_silenced_checks_are_counted_not_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**GOOD_ENV, "SILENCED_CHECKS": "bastion.W041"}
    result = run_checks(settings_from(monkeypatch, env), deploy=True)
    assert result.findings == ()
    assert [finding.id for finding in result.silenced] == ["bastion.W041"]
    assert not result.failed("warning")


def test_an_unknown_silenced_id_is_a_finding_not_a_failure_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loading settings loads no plugin, so it cannot know an app's IDs: the check says it."""
    settings = settings_from(
        monkeypatch, {**GOOD_ENV, "SILENCED_CHECKS": "bastion.W041,bastion.W41"}
    )
    assert settings.SILENCED_CHECKS == ("bastion.W041", "bastion.W41")
    for deploy in (False, True):  # a basic check: it holds in every environment
        result = run_checks(settings, deploy=deploy)
        (found,) = [f for f in result.findings if f.id == "bastion.W005"]
        assert found.level == "warning"
        assert "'bastion.W41'" in found.message
        assert "bastion.W041" not in found.message  # a known ID (the example app's) is not named
    assert "bastion.W005" not in check_ids(monkeypatch, {**GOOD_ENV, "SILENCED_CHECKS": ""})


def test_loading_settings_loads_no_check_plugin() -> None:
    """The settings are the bottom of the house: a plugin's import cannot run under them."""
    code = "from bastion.config import load_settings\nload_settings(SILENCED_CHECKS='bastion.W99')"
    assert modules_loaded_by(code, ("bastion_example", "bastion.deploy")) == []


# -- the registry's decorator ------------------------------------------------------------------


def test_a_rule_is_registered_with_its_ids_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    checks = CheckRegistry()

    @checks.register(CheckSpec("app.W900", "always"), CheckSpec("app.E901", "never"))
    def rule(settings: Settings) -> Iterator[Finding]:
        yield make_finding("app.W900", "found", "fix it")

    assert list(checks.specs) == ["app.W900", "app.E901"]
    assert checks.rules == [rule]
    assert checks.specs["app.E901"].level == "error"
    (found,) = rule(settings_from(monkeypatch, {}))
    assert (found.id, found.level) == ("app.W900", "warning")


def test_an_id_cannot_be_registered_twice() -> None:
    checks = CheckRegistry()
    checks.register(CheckSpec("app.W900", "one"))(lambda settings: iter(()))
    with pytest.raises(ValueError, match=r"check ID app\.W900 is registered twice"):
        checks.register(CheckSpec("app.W900", "two"))(lambda settings: iter(()))
    mine = CheckRegistry()
    mine.register(CheckSpec("bastion.E001", "taken"))(lambda settings: iter(()))
    merged = CheckRegistry()
    merged.merge(checks)
    merged.merge(mine)
    with pytest.raises(ValueError, match=r"bastion\.E001 is registered twice"):
        merged.merge(mine)  # an app's plugin may not take an ID bastion (or another app) uses


def test_a_declared_rule_does_not_run_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """W060 needs the database: registered with its ID, run by the caller, not by run_checks."""
    assert "bastion.W060" in CHECKS
    settings = settings_from(monkeypatch, {**GOOD_ENV, "SILENCED_CHECKS": ""})
    assert "bastion.W060" not in ids(run_checks(settings))


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_web_concurrency_is_validated(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", value)
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY"):
        load_settings()


def test_without_deploy_only_basic_checks_run(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        **BAD_ENV,
        "SESSION_MAX_AGE": "3600",
        "SESSION_IDLE_TIMEOUT": "7200",
        "VALKEY_URL": "redis://127.0.0.1:6379/0",
        "CACHE_CONNECT_TIMEOUT_MS": "80",
        "CACHE_COMMAND_TIMEOUT_MS": "40",
    }
    assert check_ids(monkeypatch, env, deploy=False) == {"bastion.W021", "bastion.W033"}
    assert {"bastion.W021", "bastion.W033", "bastion.E001"} <= check_ids(monkeypatch, env)


# -- SECRET_KEY ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("", {"bastion.E001"}),
        ("Zq8#x", {"bastion.E002"}),
        ("a" * 64, {"bastion.E003"}),
        ("ab" * 40, {"bastion.E003"}),  # two distinct characters
        ("password" * 8, {"bastion.E003"}),  # passes the distinct-characters rule, repeats
        # Random keys get fixed ids: every xdist worker must collect the same test ids.
        pytest.param("change-me-" + secrets.token_urlsafe(48), {"bastion.E003"}, id="change-me-"),
        pytest.param("short-" + secrets.token_hex(8), {"bastion.E002"}, id="short-"),
        (GOOD_KEY, set()),
    ],
)
def test_secret_key(monkeypatch: pytest.MonkeyPatch, key: str, expected: set[str]) -> None:
    found = check_ids(monkeypatch, {**GOOD_ENV, "SECRET_KEY": key}) - {"bastion.W041"}
    assert found == expected


def test_random_keys_are_never_flagged(monkeypatch: pytest.MonkeyPatch) -> None:
    """No false positives on what the hint tells people to generate, in either common form."""
    for _ in range(300):
        for key in (secrets.token_urlsafe(64), secrets.token_hex(32), secrets.token_urlsafe(38)):
            settings = load_settings(**{**GOOD_ENV, "SECRET_KEY": key})
            assert ids(run_checks(settings)) == {"bastion.W041"}, key


def test_the_secret_is_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "password" * 8
    result = run_checks(settings_from(monkeypatch, {**GOOD_ENV, "SECRET_KEY": key}))
    assert all(key not in finding.message + finding.hint for finding in result.findings)
    assert all("password" not in finding.message for finding in result.findings)


# -- proxies, hosts, origins, cookies ------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxies", "expected"),
    [
        ("0.0.0.0/0", {"bastion.E012"}),
        ("::/0", {"bastion.E012"}),
        ("10.0.0.0/8,::/0", {"bastion.E012"}),
        ("::ffff:0:0/96", {"bastion.E012"}),  # every IPv4 address, written as IPv6
        ("0.0.0.0/1", {"bastion.W013"}),
        ("2000::/3", {"bastion.W013"}),
        ("10.0.0.0/8", set()),
        ("172.16.0.0/12,192.168.0.0/16", set()),
        ("fc00::/7", set()),  # unique-local, private
        ("173.245.48.0/20,2400:cb00::/32", set()),  # a CDN's published ranges
        ("unix,127.0.0.1", set()),
    ],
)
def test_trusted_proxies(monkeypatch: pytest.MonkeyPatch, proxies: str, expected: set[str]) -> None:
    found = check_ids(monkeypatch, {**GOOD_ENV, "TRUSTED_PROXIES": proxies}) - {"bastion.W041"}
    assert found == expected


def test_https_without_a_trusted_proxy_loses_the_secure_cookie(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "bastion.W014" in check_ids(monkeypatch, {**GOOD_ENV, "TRUSTED_PROXIES": ""})


def test_plain_http_trusted_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**GOOD_ENV, "TRUSTED_ORIGINS": "https://admin.example.com,http://old.example.com"}
    assert "bastion.W015" in check_ids(monkeypatch, env)


def test_allowed_hosts_without_star_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**GOOD_ENV, "ALLOWED_HOSTS": ".example.com,app.example.org"}
    assert "bastion.E011" not in check_ids(monkeypatch, env)


def test_session_max_age_of_thirty_days_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "bastion.W020" not in check_ids(
        monkeypatch, {**GOOD_ENV, "SESSION_MAX_AGE": str(30 * 86400)}
    )
    assert "bastion.W020" in check_ids(
        monkeypatch, {**GOOD_ENV, "SESSION_MAX_AGE": str(30 * 86400 + 1)}
    )


# -- processes and Valkey --------------------------------------------------------------------


def test_several_processes_need_valkey(monkeypatch: pytest.MonkeyPatch) -> None:
    without = {k: v for k, v in GOOD_ENV.items() if not k.startswith(("VALKEY", "CACHE"))}
    assert "bastion.W030" in check_ids(monkeypatch, without)
    monkeypatch.delenv("WEB_CONCURRENCY")
    assert "bastion.W030" not in check_ids(monkeypatch, {})  # one process by default


@pytest.mark.parametrize(
    ("url", "processes", "warned"),
    [
        ("redis://valkey.internal:6379/0", "4", True),
        ("redis://valkey.internal:6379/0", "1", False),
        ("valkey+sentinel://s1:26379,s2:26379,s3:26379/bastion", "4", False),
        ("valkey+cluster://n1:6379,n2:6379", "4", False),
    ],
)
def test_several_processes_on_one_plain_valkey(
    monkeypatch: pytest.MonkeyPatch, url: str, processes: str, warned: bool
) -> None:
    """While a lone Valkey is down each process limits on its own: W034 says so, with N."""
    env = {**GOOD_ENV, "VALKEY_URL": url, "WEB_CONCURRENCY": processes}
    result = run_checks(settings_from(monkeypatch, env))
    found = [f for f in result.findings if f.id == "bastion.W034"]
    assert bool(found) is warned
    if found:
        assert "up to 4 x SIGN_IN_RATE_LIMIT" in found[0].message
        assert "valkey+sentinel://" in found[0].hint


def test_valkey_timeouts_must_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in GOOD_ENV.items() if not k.startswith("CACHE_")}
    result = run_checks(settings_from(monkeypatch, env))
    (finding,) = [f for f in result.findings if f.id == "bastion.W031"]
    assert "CACHE_COMMAND_TIMEOUT_MS is not configured" in finding.message
    monkeypatch.setenv("CACHE_COMMAND_TIMEOUT_MS", "50")  # chosen, even if equal to the default
    assert "bastion.W031" not in {f.id for f in run_checks(load_settings()).findings}


def test_seconds_scale_valkey_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**GOOD_ENV, "CACHE_COMMAND_TIMEOUT_MS": "3000"}
    found = check_ids(monkeypatch, env)
    assert "bastion.W032" in found
    assert "bastion.W031" not in found


def test_the_retired_connect_timeout_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    found = check_ids(monkeypatch, {**GOOD_ENV, "CACHE_CONNECT_TIMEOUT_MS": "30"}, deploy=False)
    assert "bastion.W033" in found
    monkeypatch.delenv("CACHE_CONNECT_TIMEOUT_MS")
    assert "bastion.W033" not in check_ids(monkeypatch, GOOD_ENV, deploy=False)


def test_no_valkey_means_no_timeout_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {k: v for k, v in GOOD_ENV.items() if k != "VALKEY_URL"}
    env.update({"WEB_CONCURRENCY": "1", "CACHE_COMMAND_TIMEOUT_MS": "5000"})
    assert not {"bastion.W031", "bastion.W032", "bastion.W033"} & check_ids(monkeypatch, env)


# -- sandbox, metrics, database --------------------------------------------------------------


def test_sandbox_is_reported_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    production = check_ids(monkeypatch, GOOD_ENV)
    assert "bastion.W041" in production
    assert "bastion.E040" not in production
    development = check_ids(monkeypatch, {**GOOD_ENV, "APP_ENV": "development"})
    assert "bastion.E040" in development
    assert "bastion.W041" not in development


def test_metrics_need_a_declared_proxy_block(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "bastion.W042" not in check_ids(monkeypatch, GOOD_ENV)
    assert "bastion.W042" in check_ids(
        monkeypatch, {**GOOD_ENV, "METRICS_BLOCKED_AT_PROXY": "false"}
    )
    assert "bastion.W042" not in check_ids(
        monkeypatch, {**GOOD_ENV, "METRICS_ENABLED": "false", "METRICS_BLOCKED_AT_PROXY": "false"}
    )


@pytest.mark.parametrize("state", ["missing", "behind", "unknown"])
def test_schema_not_current_is_e051(monkeypatch: pytest.MonkeyPatch, state: str) -> None:
    settings = settings_from(monkeypatch, GOOD_ENV)
    found = list(schema_state(settings, state))
    assert [f.id for f in found] == ["bastion.E051"]
    assert state in found[0].message
    assert ("bastion migrate" in found[0].hint) is (state != "unknown")
    assert list(schema_state(settings, "current")) == []
    assert list(schema_state(settings, None)) == []  # the database did not answer


def test_sqlite_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    # Jobs off: the job queue needs PostgreSQL, so JOBS_ENABLED would stop start-up here.
    env = {
        **GOOD_ENV,
        "DATABASE_URL": "sqlite:////var/lib/bastion/bastion.db",
        "JOBS_ENABLED": "false",
    }
    assert "bastion.W050" in check_ids(monkeypatch, env)
    assert "bastion.W050" not in check_ids(monkeypatch, {**env, "APP_ENV": "development"})


# -- the console script ----------------------------------------------------------------------


def test_cli_bad_configuration_exits_1_with_json() -> None:
    result = run_cli(BAD_ENV, "--deploy", "--json")
    assert result.returncode == 1, result.stderr
    findings = json.loads(result.stdout)
    assert isinstance(findings, list)
    assert {f["id"] for f in findings} == BAD_IDS
    for finding in findings:
        assert set(finding) == {"id", "level", "message", "hint"}
        assert finding["level"] in ("error", "warning")
        assert all(isinstance(value, str) and value for value in finding.values())


def test_cli_good_configuration_exits_0() -> None:
    result = run_cli(GOOD_ENV, "--deploy", "--json")
    assert result.returncode == 0, result.stderr
    assert "bastion.W060 skipped (the job queue's database does not answer)" in result.stderr
    assert [f["id"] for f in json.loads(result.stdout)] == ["bastion.W041"]
    assert run_cli(GOOD_ENV, "--deploy", "--fail-level", "warning").returncode == 1
    silenced = run_cli({**GOOD_ENV, "SILENCED_CHECKS": "bastion.W041"}, "--deploy")
    assert silenced.returncode == 0
    assert silenced.stdout.strip() == (
        "bastion check: no issues (1 silenced) from deployment checks"
    )


def test_cli_text_output() -> None:
    result = run_cli(BAD_ENV, "--deploy")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"bastion\.E001 error: SECRET_KEY is the development default.*", lines[0])
    assert lines[1].startswith("  hint: ")
    blocks = [line for line in lines if re.match(r"bastion\.[EW]\d{3} (error|warning): ", line)]
    assert len(blocks) == len(BAD_IDS)
    assert lines[-1] == (
        "bastion check: 6 error(s), 3 warning(s) (0 silenced) from deployment checks"
    )


def test_cli_without_deploy_runs_basic_checks_only() -> None:
    result = run_cli(BAD_ENV)
    assert result.returncode == 0
    assert result.stdout.strip() == (
        "bastion check: no issues (0 silenced) from basic checks (add --deploy for production)"
    )


def test_cli_configuration_that_does_not_load_exits_2() -> None:
    result = run_cli({"APP_ENV": "production"}, "--deploy", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("bastion: invalid configuration: SECRET_KEY")


# -- jobs ------------------------------------------------------------------------------------


def test_inline_jobs_in_production_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "bastion.W061" in check_ids(monkeypatch, {**GOOD_ENV, "JOBS_ENABLED": "false"})
    assert "bastion.W061" not in check_ids(monkeypatch, GOOD_ENV)


def test_worker_heartbeat_rule_is_pure_and_needs_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from bastion.deploy._checks import worker_heartbeat

    settings = settings_from(monkeypatch, GOOD_ENV)
    assert [f.id for f in worker_heartbeat(settings, None)] == ["bastion.W060"]
    assert [f.id for f in worker_heartbeat(settings, 61.0)] == ["bastion.W060"]
    assert list(worker_heartbeat(settings, 3.0)) == []
    inline = settings_from(monkeypatch, {**GOOD_ENV, "JOBS_ENABLED": "false"})
    assert list(worker_heartbeat(inline, None)) == []


def test_production_without_email_url_is_e070(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reset links and notices would go nowhere: an error, not a judgement call."""
    without = {k: v for k, v in GOOD_ENV.items() if k != "EMAIL_URL"}
    result = run_checks(settings_from(monkeypatch, without), deploy=True)
    assert ids(result) == {"bastion.W041", "bastion.E070"}
    assert result.failed()
    # Development writes mail to the console: nothing to report there.
    assert "bastion.E070" not in check_ids(monkeypatch, {**without, "APP_ENV": "development"})


def test_w080_names_the_administrators_without_a_second_factor() -> None:
    settings = load_settings()
    assert list(admins_without_second_factor(settings, [])) == []
    (found,) = admins_without_second_factor(settings, ["ada@example.com"])
    assert found.id == "bastion.W080"
    assert "1 administrator account(s) without a second factor: ada@example.com" in found.message
    many = [f"admin{n}@example.com" for n in range(7)]
    (found,) = admins_without_second_factor(settings, many)
    assert "admin4@example.com and 2 more" in found.message
    assert "admin5@example.com" not in found.message
