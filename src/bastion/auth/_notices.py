"""Security notices: the email an account gets when something happens to it.

Each notice says what happened, when, from which address and browser, and
what to do if it was not the account's owner. It never holds a password, a
token or a link that signs anyone in: a notice may be read by whoever took
the mailbox, and must give them nothing. It is queued as the task
``bastion.mail.send`` (see :mod:`bastion._later`), never sent in the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bastion._later import Later
from bastion.audit import (
    PASSKEY_REGISTERED,
    PASSKEY_REMOVED,
    PASSWORD_CHANGED,
    PASSWORD_RESET_COMPLETED,
    SECOND_FACTOR_DISABLED,
    SECOND_FACTOR_ENABLED,
    SESSION_REVOKED,
    SIGN_IN_NEW_DEVICE,
)
from bastion.db._types import utcnow
from bastion.guard import Client
from bastion.mail import MAIL_TASK, Message


@dataclass(frozen=True, slots=True)
class _Notice:
    subject: str
    happened: str


#: One notice per audit action that sends one; the subject names the site.
NOTICES: dict[str, _Notice] = {
    PASSWORD_CHANGED: _Notice(
        "Your password was changed", "The password of your account was changed."
    ),
    PASSWORD_RESET_COMPLETED: _Notice(
        "Your password was reset",
        "The password of your account was reset with a link sent to this address, "
        "and every session of the account was ended.",
    ),
    SESSION_REVOKED: _Notice(
        "A session of your account was ended",
        "One or more sessions of your account were ended from another signed-in "
        "device (the address and browser below).",
    ),
    SIGN_IN_NEW_DEVICE: _Notice(
        "New sign-in to your account",
        "Your account was signed in to from a device it had not used in the last 30 days.",
    ),
    PASSKEY_REGISTERED: _Notice(
        "A passkey was added to your account",
        "A passkey was added to your account: it can now sign in without the password.",
    ),
    PASSKEY_REMOVED: _Notice(
        "A passkey was removed from your account",
        "A passkey was removed from your account: it can no longer sign in.",
    ),
    SECOND_FACTOR_ENABLED: _Notice(
        "Two-step sign-in was turned on",
        "Codes from an authenticator app (TOTP) were turned on for your account: signing in "
        "now asks for a code after the password. New backup codes were made.",
    ),
    SECOND_FACTOR_DISABLED: _Notice(
        "Two-step sign-in was turned off",
        "Codes from an authenticator app (TOTP) were turned off for your account, and its "
        "backup codes were deleted: signing in now needs the password alone.",
    ),
}

_IF_NOT_YOU = (
    "If this was you, there is nothing to do. If it was not, reset your password "
    "at {app_url}/forgot-password and end the sessions you do not know at {app_url}/account."
)


def notice_message(
    action: str, to: str, client: Client, *, app_url: str, when: datetime | None = None
) -> Message:
    """The notice for ``action`` (an audit action in :data:`NOTICES`) to ``to``."""
    notice = NOTICES[action]
    at = (when or utcnow()).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            notice.happened,
            "",
            f"When: {at}",
            f"From address: {client.ip or 'unknown'}",
            f"Browser: {client.user_agent or 'unknown'}",
            "",
            _IF_NOT_YOU.format(app_url=app_url.rstrip("/")),
        ]
    )
    return Message(to=to, subject=notice.subject, text=text)


async def notify(later: Later, action: str, to: str, client: Client, *, app_url: str) -> None:
    """Queue the notice for ``action``; never raises into the request (see ``Later``)."""
    await later(MAIL_TASK, **notice_message(action, to, client, app_url=app_url).arguments())
