"""``EMAIL_URL``: where bastion's mail goes, parsed once for the settings and the SMTP transport.

Two forms, as Django's ``EMAIL_USE_TLS`` / ``EMAIL_USE_SSL`` pair and most
mail providers' docs put it:

- ``smtp://[user:password@]host[:port]``: a plain connection upgraded with
  STARTTLS when the server offers it. The default port is 587, the
  submission port (RFC 6409) that every provider opens for clients that
  authenticate; port 25 is for server-to-server relay and is blocked by most
  clouds. Give ``:25`` for a local relay that listens there.
- ``smtps://[user:password@]host[:port]``: TLS from the first byte (implicit
  TLS, RFC 8314), default port 465.

The user and password are URL-decoded (``%40`` for ``@``), since a mail
provider's password is often a generated string with any character in it.
This module is a leaf: :mod:`bastion.config` validates with it at start-up,
and :mod:`bastion.mail` connects with what it returns, so both read the URL
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import unquote, urlsplit

#: Default port by scheme: submission with STARTTLS, and implicit TLS.
DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class EmailURL:
    """One parsed ``EMAIL_URL``; ``repr`` leaves the password out, so a traceback cannot show it."""

    scheme: Literal["smtp", "smtps"]
    host: str
    port: int
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def implicit_tls(self) -> bool:
        return self.scheme == "smtps"


def parse_email_url(value: str) -> EmailURL:
    """The parts of ``value``, or a ValueError in one line that never quotes the URL.

    The URL is never quoted back: it holds the SMTP password.
    """
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(
            "expected smtp://[user:password@]host[:port] (STARTTLS when offered) "
            "or smtps://[user:password@]host[:port] (implicit TLS)"
        )
    if not parts.hostname:
        raise ValueError(f"the URL has no host; expected {scheme}://host[:port]")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    if port == 0:
        raise ValueError("the port is not a number from 1 to 65535")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"expected {scheme}://[user:password@]host[:port] with nothing after it")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and not user:
        raise ValueError("the URL has a password but no user")
    return EmailURL(
        scheme="smtps" if scheme == "smtps" else "smtp",
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        user=user,
        password=password,
    )


def email_url(value: str | None) -> str | None:
    """``value`` if :func:`parse_email_url` accepts it, None if blank; else ValueError."""
    if value is None or not value.strip():
        return None
    parse_email_url(value)
    return value.strip()
