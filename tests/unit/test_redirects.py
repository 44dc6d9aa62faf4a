"""safe_next: a ``?next=`` that can only ever point at a path on this site."""

from __future__ import annotations

from urllib.parse import unquote, urljoin, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from bastion.redirects import MAX_NEXT_LENGTH, next_for, safe_next

SITE = "https://site.example/sign-in"

REFUSED = [
    # Another origin, written plainly.
    "https://evil.example",
    "http://evil.example/account",
    "//evil.example",
    "///evil.example",
    "//evil.example/account",
    "/\\evil.example",
    "\\\\evil.example",
    "/\\/evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "https:evil.example",
    "evil.example",
    "account",
    # Browsers drop tabs and newlines: "/\t/evil.example" is "//evil.example" to them.
    "/\t/evil.example",
    "/\n/evil.example",
    " /account",
    "/account\r\nSet-Cookie: a=b",
    "/acc ount",
    "/compte/é",
    # The same shapes percent-encoded, once and more.
    "%2F%2Fevil.example",
    "/%2F/evil.example",
    "/%2Fevil.example",
    "/%5Cevil.example",
    "/%5C/evil.example",
    "/%252F/evil.example",
    "/%25252F/evil.example",
    "/%09/evil.example",
    "/%0d%0aSet-Cookie:%20a=b",
    "/%00",
    "/%2525252F/evil.example",  # deeper than any link of ours is encoded
    # Nothing, or too much.
    "",
    None,
    "/" + "a" * MAX_NEXT_LENGTH,
]

ACCEPTED = [
    "/",
    "/account",
    "/admin/audit?page=2",
    "/admin/audit?page=2&action=auth.sign_in.failed",
    "/sandbox/jobs?job=1#result",
    "/a%20b",
    "/search?q=a%2Fb",
    "/search?q=%5C",
    "/compte/%C3%A9",
    "/a/b/../c",
    "/@evil.example",  # a path segment, not a user-info part: there is no authority
    "/evil.example:443",
]


@pytest.mark.parametrize("value", REFUSED)
def test_anything_that_could_leave_the_site_is_refused(value: str | None) -> None:
    assert safe_next(value, default="/account") == "/account"


@pytest.mark.parametrize("value", ACCEPTED)
def test_paths_on_this_site_are_kept_exactly(value: str) -> None:
    assert safe_next(value, default="/account") == value
    assert urlsplit(urljoin(SITE, value)).netloc == "site.example"


_URLISH = st.text(alphabet="/\\:%@?#.2FfCc5a\t\n\r é", max_size=24)


@given(_URLISH)
def test_whatever_is_kept_stays_on_the_site_however_often_it_is_decoded(value: str) -> None:
    """The property behind the list: a kept value names this host, and so does each
    decoding of it (for a decoder somewhere on the way that decodes once too often)."""
    kept = safe_next(value, default="")
    if not kept:
        return
    assert kept == value
    layer = kept
    for _ in range(4):
        resolved = urlsplit(urljoin(SITE, layer.replace("\t", "").replace("\n", "")))
        assert resolved.netloc == "site.example", layer
        assert not layer.replace("\t", "").startswith(("//", "/\\")), layer
        layer = unquote(layer)


def _request(path: str, query: str = "") -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "headers": [(b"host", b"site.example")],
            "scheme": "https",
            "server": ("site.example", 443),
        }
    )


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/admin/audit", ""),
        ("/admin/audit", "page=2&action=auth.sign_up"),
        ("/compte/é", "q=a b"),
        ("/a b", "q=%2F%2F"),
        ("/sandbox/jobs", "job=1"),
    ],
)
def test_the_way_back_it_writes_is_one_it_follows(path: str, query: str) -> None:
    target = next_for(_request(path, query))
    assert safe_next(target, default="") == target
    assert unquote(urlsplit(target).path) == path


def test_a_page_reached_through_a_doubled_slash_is_not_a_way_back() -> None:
    """ "//evil.example" can be a request path; written back, it would name a host."""
    assert safe_next(next_for(_request("//evil.example/x")), default="") == ""
