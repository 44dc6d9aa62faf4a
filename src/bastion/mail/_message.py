"""One message: plain text to one address, as JSON-safe fields a job can carry."""

from __future__ import annotations

from dataclasses import asdict, dataclass
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
