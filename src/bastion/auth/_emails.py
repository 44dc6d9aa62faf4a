"""Email normalisation: one spelling per account, and no control characters anywhere.

Addresses are compared case-insensitively (every large provider treats them
so), stored lower-case, and refused if they could smuggle a line break or
other control character into a log, a header or an HTML page.
"""

from __future__ import annotations

import re

MAX_EMAIL = 254
_SHAPE = re.compile(r"[^@\s]{1,64}@[^@\s.][^@\s]*\.[^@\s]+")


class InvalidEmail(ValueError):
    """The text cannot be an email address; the message is safe to show."""


def normalise_email(value: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidEmail("email is required")
    if len(text) > MAX_EMAIL:
        raise InvalidEmail(f"email is longer than {MAX_EMAIL} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0x80 <= ord(c) < 0xA0 for c in text):
        raise InvalidEmail("email contains control characters")
    if not _SHAPE.fullmatch(text):
        raise InvalidEmail("email is not an address like name@example.com")
    return text.lower()
