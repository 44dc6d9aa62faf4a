"""bastion's own periodic work, declared like any app's task.

Blocked sign-in counts are not here: :class:`~bastion.audit._blocked.BlockedAttempts`
flushes them in the app itself, every 5 s and at shutdown, because a job would
add a queue round trip and lose nothing less at a crash.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from bastion.jobs._tasks import JobContext, Task

if TYPE_CHECKING:
    from bastion.config import Settings

logger = logging.getLogger("bastion.jobs")


async def _clean_sessions(ctx: JobContext) -> None:
    # Imported when the cleanup runs: importing bastion.jobs (every app, the worker)
    # then does not load the accounts package, its routes and argon2.
    from bastion.auth._devices import forget_stale  # noqa: PLC0415
    from bastion.auth._passkeys import delete_spent_challenges  # noqa: PLC0415
    from bastion.auth._sessions import delete_expired  # noqa: PLC0415
    from bastion.db._types import utcnow  # noqa: PLC0415

    async with ctx.database.session() as db:
        removed = await delete_expired(db, timedelta(seconds=ctx.settings.SESSION_IDLE_TIMEOUT))
        forgotten = await forget_stale(db, utcnow())
        await delete_spent_challenges(db, utcnow())
    if removed:
        logger.info("jobs: removed %d expired or idle sessions", removed)
    if forgotten:
        logger.info("jobs: forgot %d devices unused for 30 days", forgotten)


async def _send_mail(ctx: JobContext, to: str, subject: str, text: str) -> None:
    # Imported when a message goes out, as the session sweep above.
    from bastion.mail import Message, deliver, transport_for  # noqa: PLC0415

    await deliver(Message(to=to, subject=subject, text=text), transport_for(ctx.settings))


async def _password_reset(
    ctx: JobContext, email: str, ip: str | None = None, user_agent: str | None = None
) -> None:
    # Imported when a reset is asked for, as the session sweep above.
    from bastion.auth._resets import deliver_reset  # noqa: PLC0415

    await deliver_reset(
        ctx.database, ctx.settings, email=email, ip=ip, user_agent=user_agent, attempt=ctx.attempt
    )


def builtin_tasks(settings: Settings) -> list[Task]:
    """The expired-session sweep, every ``JOBS_SESSION_CLEANUP_SECONDS``, sending mail,
    and a password reset (a token and its link by mail, see :mod:`bastion.auth._resets`).

    A message is retried with backoff (2, 4, 8 ... s) when its delivery
    raises, a refused SMTP connection among the causes; so is a reset, whose
    retry draws a new token that supersedes the undelivered one.
    """
    return [
        Task(
            "bastion.sessions.clean", _clean_sessions, every=settings.JOBS_SESSION_CLEANUP_SECONDS
        ),
        Task("bastion.mail.send", _send_mail, queue="mail", retries=5, backoff=2),
        Task("bastion.auth.password_reset", _password_reset, queue="mail", retries=5, backoff=2),
    ]
