"""Transports: where a message goes. The console in development; SMTP with ``EMAIL_URL``."""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

from bastion.mail._message import Message

if TYPE_CHECKING:
    from bastion.config import Settings

logger = logging.getLogger("bastion.mail")

#: The last messages the console transport wrote (the development sandbox shows them).
OUTBOX_SIZE = 20
_outbox: deque[Message] = deque(maxlen=OUTBOX_SIZE)


class Transport(Protocol):
    async def send(self, message: Message) -> None:
        """Deliver ``message`` or raise (the job that called it retries)."""


class ConsoleTransport:
    """Development without ``EMAIL_URL``: the whole message in the log, and in the outbox.

    This is the one log line that may hold a reset link: it is written only
    in development, where the developer is the recipient.
    """

    def __init__(self, sender: str) -> None:
        self.sender = sender

    async def send(self, message: Message) -> None:
        _outbox.append(message)
        logger.info(
            "mail (console): from %s to %s, subject %r\n%s",
            self.sender,
            message.to,
            message.subject,
            message.text,
        )


def outbox() -> list[Message]:
    """The messages the console transport wrote in this process, newest first."""
    return list(reversed(_outbox))


def transport_for(settings: Settings) -> Transport:
    if settings.EMAIL_URL is None:
        return ConsoleTransport(settings.EMAIL_FROM)
    raise NotImplementedError("SMTP transport: to be built")
