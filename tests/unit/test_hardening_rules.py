"""The small pure pieces the envelope is built from: security headers and URL origins.

Hosts, CSRF decisions and the proxy resolver have their own modules; this one
covers what is left: ``SecurityHeaders`` and ``parse_url_origin``/``Origin``.
"""

from __future__ import annotations

import pytest

from bastion._parse.origins import Origin, parse_url_origin
from bastion.hardening import DEFAULT_SECURITY_HEADERS
from bastion.hardening._headers import DEFAULT_HSTS, SecurityHeaders

Headers = list[tuple[bytes, bytes]]


def _names(headers: Headers) -> list[bytes]:
    return [name for name, _ in headers]


class TestSecurityHeaders:
    def test_defaults_on_http_leave_out_hsts(self) -> None:
        added = SecurityHeaders.build().add([], https=False)
        assert dict(added) == {
            name.encode(): value.encode() for name, value in DEFAULT_SECURITY_HEADERS.items()
        }
        assert b"strict-transport-security" not in _names(added)

    def test_hsts_only_on_https(self) -> None:
        added = dict(SecurityHeaders.build().add([], https=True))
        assert added[b"strict-transport-security"] == DEFAULT_HSTS.encode()

    def test_hsts_can_be_turned_off(self) -> None:
        added = SecurityHeaders.build(hsts=None).add([], https=True)
        assert b"strict-transport-security" not in _names(added)

    def test_overrides_are_case_insensitive_and_none_drops_a_header(self) -> None:
        headers = SecurityHeaders.build(
            {"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": None}
        )
        added = dict(headers.add([], https=False))
        assert added[b"x-frame-options"] == b"SAMEORIGIN"
        assert b"content-security-policy" not in added
        assert added[b"x-content-type-options"] == b"nosniff"

    def test_app_headers_win_whatever_their_case(self) -> None:
        app: Headers = [
            (b"X-Frame-Options", b"SAMEORIGIN"),
            (b"Strict-Transport-Security", b"max-age=60"),
            (b"content-type", b"text/plain"),
        ]
        added = SecurityHeaders.build().add(app, https=True)
        lowered = [name.lower() for name in _names(added)]
        assert lowered.count(b"x-frame-options") == 1
        assert lowered.count(b"strict-transport-security") == 1
        assert added[:3] == app  # the app's own headers come first and untouched
        assert (b"x-content-type-options", b"nosniff") in added

    def test_add_does_not_mutate_the_app_headers(self) -> None:
        app: Headers = [(b"content-type", b"text/plain")]
        SecurityHeaders.build().add(app, https=True)
        assert app == [(b"content-type", b"text/plain")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://example.com/path?q=1#x", Origin("https", "example.com", 443)),
        ("http://EXAMPLE.com:8080/", Origin("http", "example.com", 8080)),
        ("HTTP://example.com", Origin("http", "example.com", 80)),
        ("https://example.com:443/", Origin("https", "example.com", 443)),
        ("http://[::1]:8000/x", Origin("http", "::1", 8000)),
    ],
)
def test_url_origin(value: str, expected: Origin) -> None:
    assert parse_url_origin(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "/relative/path",
        "//example.com/",
        "javascript:alert(1)",
        "ftp://example.com/",
        "https://user@example.com/",
        "https://user:pw@example.com/",
        "http://[::1/",
        "http://example.com:99999/",
        "http://example.com:0/",
        "http://exa mple.com/",
        "http://example.com/\x00",
        "http://example.com\t/",
        "http://exa\x7fmple.com/",
        "http://évil.example/",
    ],
)
def test_malformed_url_has_no_origin(value: str) -> None:
    assert parse_url_origin(value) is None


@pytest.mark.parametrize(
    ("origin", "text"),
    [
        (Origin("https", "example.com", 443), "https://example.com"),
        (Origin("http", "example.com", 80), "http://example.com"),
        (Origin("http", "example.com", 8080), "http://example.com:8080"),
        (Origin("https", "example.com", 80), "https://example.com:80"),
        (Origin("http", "::1", 8000), "http://[::1]:8000"),
    ],
)
def test_origin_serialises_without_the_default_port(origin: Origin, text: str) -> None:
    assert str(origin) == text
    assert parse_url_origin(text) == origin
