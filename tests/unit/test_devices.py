"""The User-Agent classifier and the device key behind the new-device notice."""

from __future__ import annotations

import pytest

from bastion.auth import Device, classify_device
from bastion.auth._devices import fingerprint, network

AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Chrome",
        "Windows",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
        "Edge",
        "Windows",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
        "Opera",
        "macOS",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        "Safari",
        "macOS",
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox", "Linux"),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.6778.81 Mobile Safari/537.36",
        "Chrome",
        "Android",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Safari",
        "iOS",
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "Chrome",
        "iOS",
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Chrome",
        "ChromeOS",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36",
        "Chrome",
        "Linux",
    ),
    ("curl/8.5.0", "curl", "Other"),
    ("python-httpx/0.28.1", "Other", "Other"),
    ("", "Other", "Other"),
    (None, "Other", "Other"),
]


@pytest.mark.parametrize(("agent", "browser", "system"), AGENTS)
def test_browser_and_system_families(agent: str | None, browser: str, system: str) -> None:
    assert classify_device(agent) == Device(browser, system)


def test_labels_read_as_a_person_would_say_them() -> None:
    assert Device("Firefox", "Linux").label() == "Firefox on Linux"
    assert Device("curl", "Other").label() == "curl"
    assert Device("Other", "Other").label() == "Unknown browser"


@pytest.mark.parametrize(
    ("ip", "block"),
    [
        ("198.51.100.23", "198.51.100.0/24"),
        ("::ffff:198.51.100.23", "198.51.100.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("not an address", "unknown"),
        (None, "unknown"),
    ],
)
def test_the_network_is_the_24_or_the_64(ip: str | None, block: str) -> None:
    assert network(ip) == block


def test_the_key_ignores_versions_and_hosts_but_not_the_key() -> None:
    old = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
    new = old.replace("128.0", "133.0")
    key = fingerprint(b"k" * 32, old, "198.51.100.1")
    assert fingerprint(b"k" * 32, new, "198.51.100.200") == key
    assert fingerprint(b"k" * 32, old, "198.51.101.1") != key
    assert fingerprint(b"r" * 32, old, "198.51.100.1") != key
    assert len(key) == 64
