"""Strict Host parsing and ALLOWED_HOSTS matching."""

from __future__ import annotations

import pytest

from bastion._parse.origins import HostError, ParsedHost, parse_host
from bastion.hardening._hosts import AllowedHosts


@pytest.mark.parametrize(
    ("value", "name", "port"),
    [
        ("example.com", "example.com", None),
        ("EXAMPLE.com:8443", "example.com", 8443),
        ("example.com.", "example.com", None),
        ("127.0.0.1:8000", "127.0.0.1", 8000),
        ("[::1]", "::1", None),
        ("[2001:DB8:0::1]:443", "2001:db8::1", 443),
        ("my_service", "my_service", None),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", None),
    ],
)
def test_valid_hosts(value: str, name: str, port: int | None) -> None:
    parsed = parse_host(value)
    assert (parsed.name, parsed.port) == (name, port)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "example.com/path",
        "example.com, evil.com",
        "example.com evil.com",
        "user@example.com",
        "example.com:",
        "example.com:0",
        "example.com:65536",
        "example.com:99999",
        "example.com:80:80",
        "example.com:+80",
        "exa mple.com",
        "exa\x00mple.com",
        "a..b",
        ".example.com",
        "-bad.example.com",
        "bad-.example.com",
        "bücher.example",
        "a" * 64 + ".com",
        "[::1",
        "[::1]x",
        "[not-ipv6]",
        "[fe80::1%eth0]",
        "::1",
        "[::1]:0",
    ],
)
def test_malformed_hosts(value: str) -> None:
    with pytest.raises(HostError):
        parse_host(value)


def allowed(patterns: list[str], host: str) -> bool:
    return parse_host(host) in AllowedHosts(patterns)


def test_exact_names_ignore_port_and_case() -> None:
    assert allowed(["example.com"], "Example.COM:8443")
    assert not allowed(["example.com"], "www.example.com")


def test_dot_prefix_matches_domain_and_subdomains_on_label_boundaries() -> None:
    patterns = [".example.com"]
    assert allowed(patterns, "example.com")
    assert allowed(patterns, "a.b.example.com")
    assert not allowed(patterns, "evil-example.com")
    assert not allowed(patterns, "example.com.evil.com")
    assert not allowed(patterns, "badexample.com")


def test_star_allows_everything_valid() -> None:
    assert allowed(["*"], "anything.example")
    assert allowed(["*"], "[::1]")


def test_ipv6_patterns() -> None:
    assert allowed(["[::1]"], "[::1]:8000")
    assert allowed(["0:0::1"], "[::1]")
    assert not allowed([".example.com"], "[::1]")


def test_parsed_host_equality() -> None:
    assert parse_host("[::1]") == ParsedHost("::1", None, is_ipv6=True)
