"""One message: plain text to one address, as JSON-safe fields a job can carry."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

#: The task that sends one message (declared in :mod:`bastion.jobs._builtin`).
MAIL_TASK = "bastion.mail.send"


@dataclass(frozen=True, slots=True)
class Message:
    to: str
    subject: str
    text: str

    def arguments(self) -> dict[str, Any]:
        """The job arguments that carry this message."""
        return asdict(self)

    def compose(self, sender: str, *, now: datetime | None = None) -> EmailMessage:
        """This message as RFC 5322 text/plain in UTF-8, from ``sender``.

        Date and Message-ID are set here rather than left to the relay: a
        relay that adds them is common but not promised, and spam filters
        score a message without them. The Message-ID's domain is the
        sender's, not :func:`socket.getfqdn` (a DNS look-up that can hang on
        a host without a resolver). A header value with a line break raises
        ValueError (the email package refuses it), so no input can add a header.
        """
        email = EmailMessage()
        email["From"] = sender
        email["To"] = self.to
        email["Subject"] = self.subject
        email["Date"] = format_datetime(now or datetime.now(UTC))
        domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        email["Message-ID"] = make_msgid(domain=domain)
        email.set_content(self.text, subtype="plain", charset="utf-8")
        return email
