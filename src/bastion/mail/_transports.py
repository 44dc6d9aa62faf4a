"""Transports: where a message goes, chosen from the settings, and the one place it is sent.

=================  ===============================  ==============================
``EMAIL_URL``      ``APP_ENV``                      transport (``outcome`` counted)
=================  ===============================  ==============================
set                any                              :class:`SmtpTransport` (``sent``)
unset              anything but ``production``      :class:`ConsoleTransport` (``console``)
unset              ``production``                   :class:`DroppedTransport` (``dropped``)
=================  ===============================  ==============================

:func:`deliver` is what the job ``bastion.mail.send`` calls: it sends through
the transport and reports the outcome (``failed`` when sending raised; the
job then retries) to the process's mail listener. The listener is how the
metrics count mail without this block importing them
(:class:`~bastion.Bastion` sets it, as the cache takes ``on_event``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from bastion._parse.email import parse_email_url
from bastion.mail._message import Message
from bastion.mail._smtp import SmtpTransport

if TYPE_CHECKING:
    from bastion.config import Settings

logger = logging.getLogger("bastion.mail")

#: The last messages the console transport wrote (the development sandbox shows them).
OUTBOX_SIZE = 20

#: What happened to one message: the label of ``bastion_emails_total``.
MailListener = Callable[[str], None]


class Transport(Protocol):
    #: The outcome a delivery that did not raise counts as.
    outcome: str

    async def send(self, message: Message) -> None:
        """Deliver ``message`` or raise (the job that called it retries)."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A message the console transport wrote, and when."""

    message: Message
    written_at: datetime


_outbox: deque[OutboxEntry] = deque(maxlen=OUTBOX_SIZE)


class ConsoleTransport:
    """Development without ``EMAIL_URL``: the whole message in the log, and in the outbox.

    This is the one log line that may hold a reset link: it is written only
    in development, where the developer is the recipient.
    """

    outcome = "console"

    def __init__(self, sender: str) -> None:
        self.sender = sender

    async def send(self, message: Message) -> None:
        _outbox.append(OutboxEntry(message, datetime.now(UTC)))
        logger.info(
            "mail (console): from %s to %s, subject %r\n%s",
            self.sender,
            message.to,
            message.subject,
            message.text,
        )


class DroppedTransport:
    """Production without ``EMAIL_URL``: nothing is sent, and each message says so once.

    The warning holds nothing of the message (no address, subject or link):
    production logs are read by more people than the account's owner.
    ``bastion check --deploy`` reports the same setting as ``bastion.E070``.
    """

    outcome = "dropped"

    async def send(self, message: Message) -> None:
        logger.warning("mail: EMAIL_URL is not set in production; a message was not sent")


def outbox() -> list[Message]:
    """The messages the console transport wrote in this process, newest first."""
    return [entry.message for entry in outbox_entries()]


def outbox_entries() -> list[OutboxEntry]:
    """As :func:`outbox`, with the time each was written."""
    return list(reversed(_outbox))


def transport_for(settings: Settings) -> Transport:
    """The transport the table in this module's doc picks for ``settings``."""
    if settings.EMAIL_URL is not None:
        return SmtpTransport(parse_email_url(settings.EMAIL_URL), settings.EMAIL_FROM)
    if settings.is_production:
        return DroppedTransport()
    return ConsoleTransport(settings.EMAIL_FROM)


_listener: MailListener | None = None


def set_mail_listener(listener: MailListener | None) -> None:
    """Report each message's outcome to ``listener`` (``Bastion`` passes its metrics' hook)."""
    global _listener  # noqa: PLW0603 - one app per process, as set_cache and set_later
    _listener = listener


async def deliver(message: Message, transport: Transport) -> None:
    """Send ``message``; report ``transport.outcome``, or ``failed`` and raise again."""
    try:
        await transport.send(message)
    except Exception:
        _report("failed")
        raise
    _report(transport.outcome)


def _report(outcome: str) -> None:
    listener = _listener
    if listener is not None:
        listener(outcome)
