"""The CSRF decision, rule by rule."""

from __future__ import annotations

import pytest

from bastion._parse.origins import Origin, TrustedOrigins, parse_origin
from bastion.hardening._csrf import Reason
from bastion.hardening._csrf import check as check_csrf

SITE = Origin("https", "app.example.com", 443)
TRUSTED = TrustedOrigins(["https://admin.example.com", "https://*.partner.example:8443"])


def decide(
    sec_fetch_site: str | None = None,
    origin: str | None = None,
    referer: str | None = None,
    method: str = "POST",
    own: Origin | None = SITE,
) -> Reason | None:
    return check_csrf(
        method, own, TRUSTED, sec_fetch_site=sec_fetch_site, origin=origin, referer=referer
    )


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_are_never_checked(method: str) -> None:
    assert decide(method=method) is None
    assert decide("cross-site", "https://evil.example", method=method) is None


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", "WEBSOCKET"])
def test_every_other_method_is_checked(method: str) -> None:
    assert decide(method=method) is Reason.NO_ORIGIN


class TestSecFetchSite:
    def test_same_origin_passes(self) -> None:
        assert decide("same-origin") is None
        assert decide(" Same-Origin ") is None

    @pytest.mark.parametrize("value", ["same-site", "cross-site", "none", "", "bogus"])
    def test_anything_else_fails(self, value: str) -> None:
        assert decide(value) is Reason.CROSS_SITE
        assert decide(value, "https://evil.example") is Reason.CROSS_SITE

    def test_unless_origin_is_trusted(self) -> None:
        assert decide("same-site", "https://admin.example.com") is None
        assert decide("cross-site", "https://x.partner.example:8443") is None

    def test_own_origin_is_not_enough_for_a_cross_site_fetch(self) -> None:
        # The browser says cross-site; only an explicitly trusted origin may override it.
        assert decide("cross-site", "https://app.example.com") is Reason.CROSS_SITE

    def test_it_wins_over_a_matching_referer(self) -> None:
        assert decide("cross-site", referer="https://app.example.com/page") is Reason.CROSS_SITE


class TestOrigin:
    def test_own_origin_passes(self) -> None:
        assert decide(origin="https://app.example.com") is None
        assert decide(origin="https://APP.example.com:443") is None

    def test_trusted_origin_passes(self) -> None:
        assert decide(origin="https://admin.example.com") is None

    @pytest.mark.parametrize(
        "origin",
        [
            "https://app.example.com.evil.com",
            "https://evil-app.example.com",
            "https://evilapp.example.com",
            "http://app.example.com",  # scheme mismatch
            "https://app.example.com:8443",  # port mismatch
            "https://other.example.com",
        ],
    )
    def test_lookalikes_and_mismatches_fail(self, origin: str) -> None:
        assert decide(origin=origin) is Reason.ORIGIN_MISMATCH

    def test_null_fails(self) -> None:
        assert decide(origin="null") is Reason.NULL_ORIGIN

    @pytest.mark.parametrize(
        "origin",
        [
            "",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "ftp://app.example.com",
            "https://",
            "https://app.example.com:99999",
        ],
    )
    def test_non_origins_fail(self, origin: str) -> None:
        assert decide(origin=origin) is Reason.BAD_ORIGIN

    def test_origin_wins_over_referer(self) -> None:
        assert decide(origin="https://evil.example", referer="https://app.example.com/") is (
            Reason.ORIGIN_MISMATCH
        )

    def test_unknown_own_origin(self) -> None:
        assert decide(origin="https://app.example.com", own=None) is Reason.BAD_HOST
        assert decide(origin="https://admin.example.com", own=None) is None


class TestReferer:
    def test_same_origin_referer_passes(self) -> None:
        assert decide(referer="https://app.example.com/sign-in?next=/") is None

    def test_trusted_referer_passes(self) -> None:
        assert decide(referer="https://a.b.partner.example:8443/x") is None

    def test_mismatch_fails(self) -> None:
        assert decide(referer="https://app.example.com.evil.com/") is Reason.REFERER_MISMATCH

    def test_http_referer_on_https_site_fails(self) -> None:
        assert decide(referer="http://app.example.com/") is Reason.INSECURE_REFERER

    @pytest.mark.parametrize(
        "referer", ["", "/relative/path", "not a url", "https://exa mple.com/", "https://[::1/"]
    )
    def test_malformed_fails(self, referer: str) -> None:
        assert decide(referer=referer) is Reason.BAD_REFERER

    def test_http_site(self) -> None:
        own = Origin("http", "localhost", 8000)
        assert decide(referer="http://localhost:8000/page", own=own) is None
        assert decide(referer="http://localhost:8001/page", own=own) is Reason.REFERER_MISMATCH


def test_no_header_at_all_fails() -> None:
    assert decide() is Reason.NO_ORIGIN


class TestTrustedOrigins:
    def test_wildcards_match_on_label_boundaries_per_scheme_and_port(self) -> None:
        trusted = TrustedOrigins(["https://*.example.com"])

        def has(value: str) -> bool:
            parsed = parse_origin(value)
            return parsed is not None and parsed in trusted

        assert has("https://a.example.com")
        assert has("https://a.b.example.com")
        assert not has("https://example.com")
        assert not has("https://evilexample.com")
        assert not has("https://a.example.com.evil.com")
        assert not has("http://a.example.com")
        assert not has("https://a.example.com:8443")

    @pytest.mark.parametrize("bad", ["example.com", "https://", "https://*", "null"])
    def test_bad_entries_are_refused_at_start_up(self, bad: str) -> None:
        with pytest.raises(ValueError, match="origin"):
            TrustedOrigins([bad])


def test_every_reason_has_a_distinct_message() -> None:
    messages = [reason.value for reason in Reason]
    assert len(set(messages)) == len(messages)
