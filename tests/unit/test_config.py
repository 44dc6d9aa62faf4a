"""Settings: laptop defaults, the comma-separated forms, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bastion.config import ConfigError, Settings, get_settings, load_settings, reset_settings


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
        ("VALKEY_URL", "http://cache:6379", "VALKEY_URL: expected a URL such as redis://"),
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
