"""``EMAIL_URL``: the two forms, their defaults, and one-line refusals that never quote the password."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from bastion._parse.email import EmailURL, parse_email_url
from bastion.config import ConfigError, load_settings

PASSWORD = "Pw-k7Qm2vX9@/:"
#: As a URL holds it (encoded), for the refusals below.
ENCODED = quote(PASSWORD, safe="")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", EmailURL("smtp", "mail.example.com", 587)),
        ("smtp://mail.example.com:25", EmailURL("smtp", "mail.example.com", 25)),
        ("smtps://mail.example.com", EmailURL("smtps", "mail.example.com", 465)),
        ("SMTPS://Mail.Example.com:2465/", EmailURL("smtps", "mail.example.com", 2465)),
        ("smtp://[::1]:2525", EmailURL("smtp", "::1", 2525)),
        (
            "smtp://apikey:s3cr%40t%2F%3A@smtp.example.com:587",
            EmailURL("smtp", "smtp.example.com", 587, "apikey", "s3cr@t/:"),
        ),
        (
            "smtps://ops%40example.com:pw@smtp.example.com",
            EmailURL("smtps", "smtp.example.com", 465, "ops@example.com", "pw"),
        ),
        ("smtp://relay@localhost", EmailURL("smtp", "localhost", 587, "relay", None)),
    ],
)
def test_the_forms_and_their_defaults(url: str, expected: EmailURL) -> None:
    assert parse_email_url(url) == expected


def test_only_smtps_is_implicit_tls() -> None:
    assert parse_email_url("smtps://h").implicit_tls
    assert not parse_email_url("smtp://h").implicit_tls


def test_the_repr_leaves_the_password_out() -> None:
    parsed = parse_email_url(f"smtp://u:{ENCODED}@h")
    assert parsed.password == PASSWORD
    assert "k7Qm2vX9" not in repr(parsed)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"http://u:{ENCODED}@mail.example.com", "expected smtp://"),
        (f"mailto:u:{ENCODED}@mail.example.com", "expected smtp://"),
        (f"u:{ENCODED}@mail.example.com:587", "expected smtp://"),
        (f"smtp://u:{ENCODED}@", "no host"),
        ("smtps://:465", "no host"),
        (f"smtp://u:{ENCODED}@mail.example.com:port", "port is not a number"),
        ("smtp://mail.example.com:0", "port is not a number"),
        (f"smtp://u:{ENCODED}@mail.example.com/inbox", "nothing after it"),
        ("smtp://mail.example.com?tls=1", "nothing after it"),
        (f"smtp://:{ENCODED}@mail.example.com", "password but no user"),
    ],
)
def test_bad_urls_are_one_line_config_errors_without_the_password(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(EMAIL_URL=url)
    message = str(info.value)
    assert message.startswith("invalid configuration: EMAIL_URL: ")
    assert reason in message
    assert "\n" not in message
    assert "k7Qm2vX9" not in message  # neither encoded nor decoded


def test_blank_means_unset() -> None:
    assert load_settings(EMAIL_URL="  ").EMAIL_URL is None
    assert load_settings().EMAIL_URL is None
