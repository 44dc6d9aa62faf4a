"""Sign-in rate-limit settings: defaults, the limits notation, one-line errors."""

from __future__ import annotations

import pytest

from bastion._parse.ratelimit import parse_rate_limit
from bastion.config import ConfigError, load_settings
from bastion.hardening import client_key
from bastion.ratelimit._rules import account_key


@pytest.fixture(autouse=True)
def _no_limit_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIGN_IN_RATE_LIMIT", "SIGN_IN_ACCOUNT_RATE_LIMIT"):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.SIGN_IN_RATE_LIMIT == "10/minute"
    assert settings.SIGN_IN_ACCOUNT_RATE_LIMIT == "5/15minutes"
    (per_ip,) = parse_rate_limit(settings.SIGN_IN_RATE_LIMIT)
    (per_account,) = parse_rate_limit(settings.SIGN_IN_ACCOUNT_RATE_LIMIT)
    assert (per_ip.amount, per_ip.get_expiry()) == (10, 60)
    assert (per_account.amount, per_account.get_expiry()) == (5, 900)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20 per minute", [(20, 60)]),
        ("3/second; 100/day", [(3, 1), (100, 86_400)]),
        (" 5/15minutes ", [(5, 900)]),
    ],
)
def test_accepted_notations(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: list[tuple[int, int]]
) -> None:
    monkeypatch.setenv("SIGN_IN_RATE_LIMIT", text)
    settings = load_settings()
    items = parse_rate_limit(settings.SIGN_IN_RATE_LIMIT)
    assert [(item.amount, item.get_expiry()) for item in items] == expected
    assert all(item.namespace == "signin" for item in items)


@pytest.mark.parametrize("name", ["SIGN_IN_RATE_LIMIT", "SIGN_IN_ACCOUNT_RATE_LIMIT"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ten a minute", "expected limits notation such as 10/minute or 5/15minutes"),
        ("10/fortnight", "expected limits notation such as 10/minute or 5/15minutes"),
        ("", "expected limits notation such as 10/minute or 5/15minutes"),
        ("0/minute", "a limit of 0 refuses every attempt"),
        ("1000000/minute", "expected at most 10000 attempts per window"),
    ],
)
def test_bad_notation_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"invalid configuration: {name}: ")
    assert message in text
    assert f"(got {value!r})" in text


def test_parse_rate_limit_raises_a_readable_value_error() -> None:
    with pytest.raises(ValueError, match=r"^expected limits notation such as 10/minute"):
        parse_rate_limit("per minute 10")


def test_keys() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert (
        client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert account_key(" Alice@Example.COM ") == account_key("alice@example.com")
    assert account_key("alice@example.com") != account_key("bob@example.com")
    assert len(account_key("x" * 10_000)) == 32
