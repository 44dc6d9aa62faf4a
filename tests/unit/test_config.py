"""Settings: laptop defaults, the comma-separated forms, one-line errors, and where values come from."""

from __future__ import annotations

import subprocess
import sys

import pytest
from harness.servers import clean_env

from bastion import Bastion, _redact
from bastion.config import (
    ConfigError,
    Settings,
    get_settings,
    load_settings,
    reset_settings,
)


def test_development_defaults_need_no_environment() -> None:
    settings = load_settings()
    assert settings.APP_ENV == "development"
    assert settings.APP_URL == "http://localhost:8000"
    assert settings.VALKEY_URL is None
    assert not settings.cache_enabled
    assert settings.TRUSTED_PROXIES == ("127.0.0.0/8", "::1/128", "unix")
    assert settings.CACHE_KEY_PREFIX == "bastion:"
    assert settings.CACHE_CONNECT_TIMEOUT_MS < 100
    assert settings.CACHE_COMMAND_TIMEOUT_MS < 100
    assert not settings.METRICS_ENABLED


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_ORIGINS", "https://a.example.com, https://*.b.example.com,")
    monkeypatch.setenv("ALLOWED_HOSTS", ".example.com,localhost")
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::1")
    settings = load_settings()
    assert settings.TRUSTED_ORIGINS == ("https://a.example.com", "https://*.b.example.com")
    assert settings.ALLOWED_HOSTS == (".example.com", "localhost")
    assert settings.TRUSTED_PROXIES == ("10.0.0.0/8", "2001:db8::1")


def test_empty_trusted_proxies_trusts_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "")
    assert load_settings().TRUSTED_PROXIES == ()


def test_empty_valkey_url_means_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VALKEY_URL", "")
    assert not load_settings().cache_enabled
    monkeypatch.setenv("VALKEY_URL", "redis://127.0.0.1:6379/0")
    assert load_settings().cache_enabled


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("APP_ENV", "prod", "APP_ENV: Input should be 'development' or 'production' (got 'prod')"),
        ("APP_URL", "localhost:8000", "APP_URL: expected an absolute http(s) URL"),
        ("VALKEY_URL", "http://cache:6379", "VALKEY_URL: expected redis://host:port/0"),
        (
            "TRUSTED_PROXIES",
            "10.0.0.0/8,not-an-ip",
            "TRUSTED_PROXIES: expected IPs, CIDRs or 'unix', got 'not-an-ip'",
        ),
        (
            "TRUSTED_ORIGINS",
            "https://ok.example,example.com",
            "TRUSTED_ORIGINS: not an origin: 'example.com'",
        ),
        (
            "PROXY_HEADERS",
            "x-real-ip",
            "PROXY_HEADERS: Input should be 'x-forwarded' or 'forwarded'",
        ),
        ("METRICS_ENABLED", "perhaps", "METRICS_ENABLED: Input should be a valid boolean"),
        (
            "CACHE_COMMAND_TIMEOUT_MS",
            "0",
            "CACHE_COMMAND_TIMEOUT_MS: Input should be greater than or equal to 1",
        ),
        (
            "CACHE_CONNECT_TIMEOUT_MS",
            "fast",
            "CACHE_CONNECT_TIMEOUT_MS: Input should be a valid integer",
        ),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid configuration: " + expected)
    assert "\n" not in message


def test_production_needs_its_own_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("SECRET_KEY", "x" * 50)
    assert load_settings().is_production


def test_settings_are_read_once_and_can_be_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    assert get_settings() is first
    monkeypatch.setenv("APP_URL", "https://app.example.com/")
    reset_settings()
    assert get_settings().APP_URL == "https://app.example.com"
    assert isinstance(get_settings(), Settings)


def test_cli_reports_a_bad_value_in_one_line() -> None:
    env = {"APP_ENV": "staging", "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "bastion: invalid configuration: APP_ENV: Input should be 'development' or 'production' (got 'staging')"
    ]


def test_bastion_prefix_wins_over_the_apps_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An app keeps DATABASE_URL and APP_ENV for itself, with values bastion would refuse."""
    monkeypatch.setenv("DATABASE_URL", "mysql://app@db.internal/shop")
    monkeypatch.setenv("APP_ENV", "staging")
    monkeypatch.setenv("BASTION_DATABASE_URL", "sqlite:///bastion-of-the-app.db")
    monkeypatch.setenv("BASTION_APP_ENV", "development")
    settings = load_settings()
    assert settings.DATABASE_URL == "sqlite:///bastion-of-the-app.db"
    assert settings.APP_ENV == "development"


def test_bastion_prefix_alone_is_read_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_TRUSTED_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("BASTION_METRICS_ENABLED", "true")
    settings = load_settings()
    assert settings.TRUSTED_ORIGINS == ("https://a.example", "https://b.example")
    assert settings.METRICS_ENABLED


def test_a_bad_prefixed_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_APP_URL", "localhost:8000")
    with pytest.raises(ConfigError, match="APP_URL: expected an absolute http"):
        load_settings()


def test_keywords_in_code_win_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Settings(database_url=...)`` used to be dropped in silence (the fields are upper case)."""
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-the-env.db")
    monkeypatch.setenv("BASTION_DATABASE_URL", "sqlite:///from-the-prefixed-env.db")
    settings = Settings(
        database_url="postgresql://app@db.internal/app", APP_URL="https://a.example"
    )
    assert settings.DATABASE_URL == "postgresql://app@db.internal/app"
    assert settings.APP_URL == "https://a.example"
    assert load_settings(sign_in_rate_limit="3/minute").SIGN_IN_RATE_LIMIT == "3/minute"


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("databse_url", "'databse_url' is not a setting (did you mean DATABASE_URL?)"),
        ("SECRET", "'SECRET' is not a setting (did you mean SECRET_KEY?)"),
        ("BASTION_VALKEY_URL", "'BASTION_VALKEY_URL' is not a setting (did you mean VALKEY_URL?)"),
        ("colour", "'colour' is not a setting"),
    ],
)
def test_a_keyword_that_is_no_setting_is_refused(keyword: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**{keyword: "sqlite:///x.db"})
    assert str(info.value) == "Settings: " + expected
    with pytest.raises(ConfigError, match="is not a setting"):
        load_settings(**{keyword: "x"})


def test_one_setting_given_twice_in_code_is_refused() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL is given twice"):
        Settings(DATABASE_URL="sqlite:///a.db", database_url="sqlite:///b.db")


async def test_settings_built_in_code_are_masked_once_bastion_has_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Settings(...)`` skips load_settings, which registers secrets; Bastion() does it too."""
    monkeypatch.setattr(_redact, "_known", set())
    key = "a-secret-key-built-in-code-" + "k" * 20
    settings = Settings(secret_key=key, database_url="sqlite:///:memory:")
    assert _redact.redact(f"saw {key}") == f"saw {key}"  # nothing remembered yet
    security = Bastion(settings)
    assert key not in _redact.redact(f"saw {key}")
    await security.database.dispose()


def test_child_environments_drop_the_prefixed_settings_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BASTION_DATABASE_URL", "sqlite:///leaked.db")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///leaked-too.db")
    monkeypatch.setenv("BASTION_SITE_ADDRESS", "kept: not a setting")
    env = clean_env({"VALKEY_URL": "redis://127.0.0.1:1/0"})
    assert "BASTION_DATABASE_URL" not in env
    assert "DATABASE_URL" not in env
    assert env["BASTION_SITE_ADDRESS"] == "kept: not a setting"
    assert env["VALKEY_URL"] == "redis://127.0.0.1:1/0"
