"""Where a redirect may send someone back to: a path on this site, and nothing else.

A sign-in page that honours ``?next=`` is the textbook open redirect: a link
to ``https://your.site/sign-in?next=https://evil.example`` signs the victim
in on the real site and then hands them to the attacker's copy of it. The
only safe rule is an allow-list of shape, not a deny-list of hosts, so
:func:`safe_next` accepts exactly one thing: an absolute path on this origin
(``/account``, ``/admin/audit?page=2``), in printable ASCII, and refuses
everything a browser could read as another origin:

- a scheme or an authority: ``https://evil.example``, ``//evil.example``,
  ``javascript:...``;
- a backslash anywhere: browsers read ``/\\evil.example`` as
  ``//evil.example``;
- control characters, spaces and anything outside ASCII: browsers strip tabs
  and newlines from URLs (``/\\t/evil.example`` becomes ``//evil.example``),
  and a CR or LF would split the ``Location`` header;
- the same shapes percent-encoded (``/%2F/evil.example``,
  ``%2F%2Fevil.example``, and encoded again): a path that needs an encoded
  slash or backslash to mean something is not one this site links to, and
  some proxies and frameworks decode a path once more than they should.

:func:`next_for` builds the value from the request being turned away, so the
round trip is exact: what it writes, :func:`safe_next` accepts.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from starlette.requests import HTTPConnection

__all__ = [
    "next_for",
    "safe_next",
]

#: Longer than any path this site links to; a longer ``next`` is refused, not cut.
MAX_NEXT_LENGTH = 2048

#: What a path and query may contain once percent-encoded (RFC 3986 pchar, "/", "?").
_PATH_SAFE = "/!$&'()*+,;=:@-._~?"

#: How many times a value is percent-decoded before it is judged: each layer
#: of encoding an attacker adds is peeled off, up to a depth no real link has.
_DECODE_LAYERS = 3


def _is_local_path(value: str) -> bool:
    """The value as it will be sent in ``Location``: a plain path and nothing else."""
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return False
    if "\\" in value or any(not ("!" <= char <= "~") for char in value):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def _reads_as_local(decoded: str) -> bool:
    """A decoded layer, as a decoder that went one step too far would read it.

    Spaces and non-ASCII are fine here (``/a%20b`` is a real path); a control
    character is not (a tab that browsers drop, a CR or LF that would split a
    header), nor a start that names another host.
    """
    if any(char < " " or char == "\x7f" for char in decoded):
        return False
    return not decoded.startswith(("//", "/\\"))


def safe_next(value: str | None, default: str = "/") -> str:
    """``value`` if it is a path on this site, else ``default``.

    Never raises: a hostile or malformed ``next`` is simply not followed. The
    value must already be one layer decoded (as a query parameter or form
    field is); each further layer of percent-encoding is decoded and checked
    too, so an encoded ``//`` or backslash is refused as the plain one is.
    """
    if not value or len(value) > MAX_NEXT_LENGTH or not _is_local_path(value):
        return default
    layer = value
    for _ in range(_DECODE_LAYERS):
        decoded = unquote(layer)
        if decoded == layer:
            return value
        if not _reads_as_local(decoded):
            return default
        layer = decoded
    return default  # still encoded after that many layers: no link of ours looks like this


def next_for(request: HTTPConnection) -> str:
    """The ``next`` value that brings a visitor back to ``request``'s page."""
    target = quote(request.url.path, safe=_PATH_SAFE)
    if request.url.query:
        target += "?" + quote(request.url.query, safe=_PATH_SAFE + "%")
    return target
