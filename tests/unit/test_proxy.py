"""The trusted-proxy resolver: who the client is, and which scheme it used."""

from __future__ import annotations

import logging

import pytest

from bastion.hardening import client_key
from bastion.hardening._proxy import TrustedProxies, parse_ip

PROXIES = TrustedProxies(["10.0.0.0/8", "2001:db8:ffff::/48"])


def resolve(
    proxies: TrustedProxies,
    peer: str | None,
    xff: list[str] | None = None,
    xfp: list[str] | None = None,
    forwarded: list[str] | None = None,
    scheme: str = "http",
) -> tuple[str | None, str]:
    result = proxies.resolve(peer, scheme, xff or [], xfp or [], forwarded or [])
    return result.client, result.scheme


def test_no_headers_keeps_the_peer() -> None:
    assert resolve(PROXIES, "203.0.113.7") == ("203.0.113.7", "http")


def test_trusted_peer_sets_client_and_scheme() -> None:
    assert resolve(PROXIES, "10.0.0.2", ["198.51.100.4"], ["https"]) == ("198.51.100.4", "https")


def test_walks_from_the_right_skipping_trusted_hops() -> None:
    # client-written junk on the left, then the real client, then two of our proxies
    xff = ["6.6.6.6, 198.51.100.4, 10.1.1.1, 10.2.2.2"]
    assert resolve(PROXIES, "10.0.0.2", xff)[0] == "198.51.100.4"


def test_several_header_lines_are_one_list_in_order() -> None:
    xff = ["6.6.6.6, 198.51.100.4", "10.1.1.1", "10.2.2.2"]
    assert resolve(PROXIES, "10.0.0.2", xff)[0] == "198.51.100.4"


def test_all_hops_trusted_gives_the_leftmost() -> None:
    assert resolve(PROXIES, "10.0.0.2", ["10.9.9.9, 10.1.1.1"])[0] == "10.9.9.9"


def test_malformed_entry_stops_the_walk_at_the_last_vouched_address() -> None:
    assert resolve(PROXIES, "10.0.0.2", ["garbage, 10.1.1.1"])[0] == "10.1.1.1"
    assert resolve(PROXIES, "10.0.0.2", ["198.51.100.4, not-an-ip"])[0] == "10.0.0.2"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("198.51.100.4:5000", "198.51.100.4"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
    ],
)
def test_ipv6_and_ports_in_entries(entry: str, expected: str) -> None:
    assert resolve(PROXIES, "10.0.0.2", [entry])[0] == expected


def test_ipv6_trusted_peer_and_hops() -> None:
    assert resolve(PROXIES, "2001:db8:ffff::5", ["2001:db8:1::9, 2001:db8:ffff::6"]) == (
        "2001:db8:1::9",
        "http",
    )


def test_spoofed_headers_from_an_untrusted_peer_are_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    with caplog.at_level(logging.WARNING, logger="bastion.hardening"):
        assert resolve(proxies, "203.0.113.7", ["1.2.3.4"], ["https"]) == ("203.0.113.7", "http")
        assert resolve(proxies, "203.0.113.8", ["5.6.7.8"]) == ("203.0.113.8", "http")
        assert resolve(proxies, "203.0.113.9", forwarded=["for=1.2.3.4"])[0] == "203.0.113.9"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, "warn the first time only"
    assert "203.0.113.7" in warnings[0]
    assert "TRUSTED_PROXIES" in warnings[0]


def test_empty_list_trusts_no_proxy() -> None:
    assert resolve(TrustedProxies([]), "127.0.0.1", ["1.2.3.4"]) == ("127.0.0.1", "http")


def test_unix_socket_peers() -> None:
    assert resolve(TrustedProxies(["unix"]), None, ["198.51.100.4"], ["https"]) == (
        "198.51.100.4",
        "https",
    )
    assert resolve(TrustedProxies(["127.0.0.1"]), None, ["198.51.100.4"]) == (None, "http")


def test_forwarded_header_when_configured() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], header="forwarded")
    forwarded = ['for=6.6.6.6, for="[2001:db8::17]:4711";proto=https, for=10.1.1.1;proto=http']
    assert resolve(proxies, "10.0.0.2", forwarded=forwarded) == ("2001:db8::17", "https")
    # X-Forwarded-For is not read when the proxy speaks RFC 7239: a client could write it.
    assert resolve(proxies, "10.0.0.2", ["6.6.6.6"]) == ("10.0.0.2", "http")


def test_forwarded_is_ignored_by_default() -> None:
    assert resolve(PROXIES, "10.0.0.2", forwarded=["for=6.6.6.6;proto=https"]) == (
        "10.0.0.2",
        "http",
    )


@pytest.mark.parametrize(
    ("xfp", "expected"),
    [
        (["https"], "https"),
        (["HTTPS"], "https"),
        (["https, http"], "http"),  # one value per hop, no XFF: the nearest proxy's
        (["gopher"], "http"),
        ([""], "http"),
    ],
)
def test_forwarded_proto(xfp: list[str], expected: str) -> None:
    assert resolve(PROXIES, "10.0.0.2", xfp=xfp)[1] == expected


def test_proto_follows_the_chosen_hop_when_lists_align() -> None:
    xff = ["198.51.100.4, 10.1.1.1"]
    assert resolve(PROXIES, "10.0.0.2", xff, ["https, http"]) == ("198.51.100.4", "https")


def test_websocket_scheme() -> None:
    assert resolve(PROXIES, "10.0.0.2", xfp=["https"], scheme="ws")[1] == "wss"


def test_client_key() -> None:
    assert client_key("198.51.100.4") == "198.51.100.4"
    assert client_key("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:2::ffff") == client_key("2001:db8:1:2:aaaa::1")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:198.51.100.4") == "198.51.100.4"
    assert client_key("not-an-ip") == "not-an-ip"


def test_parse_ip_rejects_junk() -> None:
    for junk in ("", "unknown", "1.2.3", "[::1", "1.2.3.4.5", "_hidden", "::1]:80"):
        assert parse_ip(junk) is None
