"""Which new passwords bastion accepts: NIST SP 800-63B rev. 4, section 3.1.1.2.

Rev. 4 asks for length and a blocklist and forbids the rest: at least 15
characters for a password that is the only factor, at least 64 allowed, no
composition rules (no "one digit, one symbol"), no forced periodic change,
and a refusal of values known to be commonly used, expected or compromised,
including words from the context (the service's name, the user's name).
So :func:`check_password` decides on exactly four things, each refusal a
named reason a client can act on:

- ``too_short``: fewer than ``PASSWORD_MIN_LENGTH`` characters (Unicode code
  points; a space counts, as rev. 4 asks that spaces be accepted);
- ``too_long``: more than :data:`~bastion.auth._passwords.MAX_PASSWORD`
  characters (1,024: argon2 takes any length, the cap stops a
  multi-megabyte body from becoming a multi-second hash);
- ``common``: the whole password, case-folded, is one of the most common
  passwords (``common_passwords.txt.gz`` beside this module, 40,101 of them;
  its sources and licences are in ``common_passwords.NOTICE.txt``);
- ``contains_context``: it contains, case-insensitively, a word of the
  user's email (its local part and its domain's labels) or of the site's name
  (``SITE_NAME`` and the labels of ``APP_URL``'s host).

The policy applies where a password is chosen (sign-up, ``bastion
createuser``, and change and reset through
:meth:`~bastion.auth.AuthService.check_new_password`), never at sign-in: a
password set under an older rule still signs in, as rev. 4 asks verifiers not
to force a change without evidence of compromise.

The list is read on the first check, not at import: starting an app (or any
CLI command) pays nothing for it, and a process that never takes a new
password never holds it. Once read it stays, as a frozenset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bastion.auth._passwords import MAX_PASSWORD

if TYPE_CHECKING:
    from bastion.config import Settings

#: The blocklist's file in this package: one case-folded password a line, gzip.
COMMON_PASSWORDS_FILE = "common_passwords.txt.gz"

#: Context words shorter than this are ignored: "com", "io", "bob" or "ada" inside
#: a passphrase ("tomorrow", "canada") says nothing about the account.
MIN_CONTEXT_WORD = 4

#: The refusal of a password over the cap, shared with the body reader that applies it first.
TOO_LONG = f"password must be at most {MAX_PASSWORD} characters"

_WORD_SEPARATORS = re.compile(r"[\W_]+")


class PasswordRule(StrEnum):
    """The rule a new password broke: the ``reason`` of the 400 a client reads."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    COMMON = "common"
    CONTAINS_CONTEXT = "contains_context"


class InvalidPassword(ValueError):
    """A new password breaks the policy; ``reason`` names the rule, the message is safe to show.

    The message never repeats the password, nor which word of the context it contains.
    """

    def __init__(self, reason: PasswordRule, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """The settings the decision depends on, read once (:meth:`from_settings`)."""

    min_length: int = 15
    #: The site's own words, case-folded: ``SITE_NAME``'s and ``APP_URL``'s host's.
    site_words: frozenset[str] = frozenset({"bastion"})
    #: As configured, for a form to say the rule: "not the site's name (bastion)".
    site_name: str = "bastion"

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        host = urlsplit(settings.APP_URL).hostname or ""
        words = context_words(settings.SITE_NAME) | _domain_words(host)
        return cls(settings.PASSWORD_MIN_LENGTH, words, settings.SITE_NAME)

    @property
    def max_length(self) -> int:
        return MAX_PASSWORD


def check_password(password: str, *, email: str, policy: PasswordPolicy) -> None:
    """Accept ``password`` as a new password for ``email``, or raise :class:`InvalidPassword`.

    The rules are checked cheapest first; the first one broken is the reason.
    ``email`` may be anything a client typed: what is not an address still
    gives its words.
    """
    if len(password) < policy.min_length:
        raise InvalidPassword(
            PasswordRule.TOO_SHORT, f"password must be at least {policy.min_length} characters"
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidPassword(PasswordRule.TOO_LONG, TOO_LONG)
    folded = password.casefold()
    if folded in common_passwords():
        raise InvalidPassword(
            PasswordRule.COMMON, "this password is one of the most common ones; choose another"
        )
    words = _email_words(email) | policy.site_words
    if any(word in folded for word in words):
        raise InvalidPassword(
            PasswordRule.CONTAINS_CONTEXT,
            "password must not contain your email address or the site's name",
        )


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The blocklist, read from the package on first use and kept."""
    import gzip  # noqa: PLC0415 - only a check of a new password pays for these
    from importlib import resources  # noqa: PLC0415

    packed = resources.files("bastion.auth").joinpath(COMMON_PASSWORDS_FILE).read_bytes()
    return frozenset(gzip.decompress(packed).decode("utf-8").splitlines())


def context_words(text: str) -> frozenset[str]:
    """The case-folded words of ``text`` long enough to count (split at all but letters, digits)."""
    return frozenset(
        word for word in _WORD_SEPARATORS.split(text.casefold()) if len(word) >= MIN_CONTEXT_WORD
    )


def _domain_words(host: str) -> frozenset[str]:
    """A host's labels but the last: ``mail.example.co.uk`` gives ``mail`` and ``example``.

    The top-level label (``com``, ``org``, ``localhost``) names no one; an IP
    address gives nothing either.
    """
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 or all(label.isdigit() for label in labels):
        return frozenset()
    return context_words(" ".join(labels[:-1]))


def _email_words(email: str) -> frozenset[str]:
    """The words of an email's local part (``ada.lovelace``: ``lovelace``) and of its domain."""
    local, _, domain = email.rpartition("@")
    if not local:  # no "@": all of it is the local part
        return context_words(email)
    return context_words(local) | _domain_words(domain)
