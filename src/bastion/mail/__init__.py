"""bastion.mail: the messages bastion sends (reset links, security notices) and how.

A :class:`Message` is plain text to one address. A transport delivers it:
SMTP with ``EMAIL_URL`` (:mod:`bastion._parse.email` says the forms), the
console in development without one (as Django's console backend), and
nowhere, with one WARNING per message, in production without one. Nothing
here is called inside a request: the accounts queue the task
``bastion.mail.send`` (see :mod:`bastion._later`), and the job calls
:func:`deliver` with :func:`transport_for`'s transport, so a failed delivery
is retried by the job's rule.
"""

from __future__ import annotations

from bastion.mail._message import MAIL_TASK, Message
from bastion.mail._smtp import SmtpTransport
from bastion.mail._transports import (
    ConsoleTransport,
    DroppedTransport,
    MailListener,
    OutboxEntry,
    Transport,
    deliver,
    outbox,
    outbox_entries,
    set_mail_listener,
    transport_for,
)

__all__ = [
    "MAIL_TASK",
    "ConsoleTransport",
    "DroppedTransport",
    "MailListener",
    "Message",
    "OutboxEntry",
    "SmtpTransport",
    "Transport",
    "deliver",
    "outbox",
    "outbox_entries",
    "set_mail_listener",
    "transport_for",
]
