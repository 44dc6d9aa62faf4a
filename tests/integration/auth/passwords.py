"""What the password change and reset tests share: the passwords, the mailbox and the audit."""

from __future__ import annotations

import asyncio
import re

from bastion.audit import recent
from bastion.db import AuditLog
from bastion.mail import Message, outbox
from tests.integration.auth.conftest import Browser

#: Long, uncommon, and free of the addresses' parts: what the password policy accepts.
OLD_PASSWORD = "correct horse battery staple 42"
NEW_PASSWORD = "violet lantern over quiet harbour 7"
LINK = re.compile(r"^(http://\S+/reset-password\?token=(\S+))$", re.MULTILINE)


async def audit_rows(browser: Browser, action: str) -> list[AuditLog]:
    async with browser.database.session() as db:
        return await recent(db, limit=100, action=action)


async def wait_for_audit(browser: Browser, action: str, count: int) -> list[AuditLog]:
    """The rows of ``action`` once there are ``count`` (the inline job writes them after the 202)."""
    for _ in range(200):
        rows = await audit_rows(browser, action)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.025)
    raise AssertionError(f"{action}: {len(rows)} rows, expected {count}")


async def next_message(to: str, subject: str, seen: list[Message]) -> Message:
    """The first message to ``to`` with ``subject`` that is not one of ``seen`` (the outbox before)."""
    for _ in range(200):
        for message in outbox():
            if (
                message.to == to
                and message.subject == subject
                and all(message is not old for old in seen)
            ):
                return message
        await asyncio.sleep(0.025)
    raise AssertionError(f"no message {subject!r} to {to}")


async def request_reset(browser: Browser, email: str) -> str:
    """Ask for a reset of ``email`` (an account) and return the token from its email."""
    seen = outbox()
    answer = await browser.client.post("/api/auth/password-reset", json={"email": email})
    assert answer.status_code == 202, answer.text
    message = await next_message(email, "Reset your password", seen)
    found = LINK.search(message.text)
    assert found is not None, message.text
    assert found.group(1).startswith("http://testserver/reset-password?token=")
    return found.group(2)
