"""bastion.mail: the messages bastion sends (reset links, security notices) and how.

A :class:`Message` is plain text to one address. A transport delivers it:
the console in development without ``EMAIL_URL`` (as Django's console
backend), SMTP with one. Nothing here is called inside a request: the
accounts queue the task ``bastion.mail.send`` (see :mod:`bastion._later`),
and the job calls :func:`transport_for`.
"""

from __future__ import annotations

from bastion.mail._message import MAIL_TASK, Message
from bastion.mail._transports import ConsoleTransport, Transport, outbox, transport_for

__all__ = ["MAIL_TASK", "ConsoleTransport", "Message", "Transport", "outbox", "transport_for"]
