"""Keep secrets out of every message bastion prints or logs.

A configuration error, a check finding or a log line is read by people and
shipped to log stores that are not secret; a ``DATABASE_URL`` or
``VALKEY_URL`` password or the ``SECRET_KEY`` in one of them is a leaked
credential. So every text bastion emits passes through :func:`redact`, which
removes two kinds of secret:

- anything in the password position of a URL (``scheme://user:PASSWORD@``)
  or a ``password=`` parameter, wherever it appears, so a value nobody
  registered (a malformed URL in an error) is still covered;
- the secrets of the loaded settings (:func:`remember`, called by
  :func:`bastion.config.load_settings`), wherever they appear, so a secret
  quoted by a library in its own words is covered too.

:func:`redact_url` shows one URL value with its password replaced, for the
messages that must say which value was wrong.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"
#: Shorter strings are too likely to occur by chance in an innocent message.
_MIN_SECRET = 4

# scheme://user:PASSWORD@ -- the password runs to the last "@" before a space or quote.
# A scheme starts only where a run of scheme characters starts (the lookbehind):
# without it the engine retried the run from each of its letters, so a long
# word cost time quadratic in its length (83 µs for a 200-letter path).
_USERINFO = re.compile(
    r"(?P<pre>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:'\"]*:)(?P<pw>[^\s'\"]*)@"
)
_PARAM = re.compile(r"(?i)(?P<pre>\b(?:password|passwd|pwd)=)(?P<pw>[^&\s'\"]*)")

_known: set[str] = set()


def remember(*, secrets: Iterable[str | None] = (), urls: Iterable[str | None] = ()) -> None:
    """Register secrets for :func:`redact`: values as they are, and the passwords of URLs.

    Takes values, not the settings object, so that this module stays a leaf
    the settings themselves can import.
    """
    for secret in secrets:
        _add(secret)
    for url in urls:
        if url:
            _add(_password_of(url))


def forget() -> None:
    """Drop every registered secret (tests load many settings in one process)."""
    _known.clear()


def _add(secret: str | None) -> None:
    if secret and len(secret) >= _MIN_SECRET:
        _known.update({secret, unquote(secret), quote(secret, safe="")})


def _password_of(url: str) -> str | None:
    userinfo = _userinfo(url)
    if userinfo is None or ":" not in userinfo:
        return None
    return userinfo.split(":", 1)[1]


def _userinfo(url: str) -> str | None:
    rest = url.split("://", 1)[1] if "://" in url else url
    if "@" not in rest:
        return None
    return rest.rsplit("@", 1)[0]


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``; works on malformed URLs too."""
    userinfo = _userinfo(url)
    if userinfo is None or ":" not in userinfo:
        return redact(url)
    user = userinfo.split(":", 1)[0]
    head = url.split("://", 1)[0] + "://" if "://" in url else ""
    host = url.rsplit("@", 1)[1]
    return redact(f"{head}{user}:{MASK}@{host}")


def redact(text: str) -> str:
    """``text`` with URL passwords, ``password=`` values and registered secrets masked."""
    text = _USERINFO.sub(lambda m: f"{m['pre']}{MASK}@", text)
    text = _PARAM.sub(lambda m: f"{m['pre']}{MASK}", text)
    for secret in sorted(_known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """Wraps another formatter and redacts its whole output, traceback included."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))
