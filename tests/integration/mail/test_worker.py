"""Mail with ``JOBS_ENABLED`` on PostgreSQL: the app queues, a real ``bastion worker`` sends.

The app process never talks SMTP here: it writes the job to procrastinate's
table, and the worker (a child process, as compose's ``worker`` service)
takes it and delivers it to the aiosmtpd server on loopback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bastion import Bastion
from bastion.config import load_settings
from bastion.db import migrate
from bastion.mail import MAIL_TASK, Message
from tests.support.smtp import SmtpServer
from tests.support.workers import WorkerProcess


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


async def test_a_worker_delivers_the_message_the_app_queued(
    postgres_url: str, smtp: SmtpServer
) -> None:
    await migrate(postgres_url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("APP_", "DATABASE_", "JOBS_"))},
        "DATABASE_URL": postgres_url,
        "JOBS_ENABLED": "true",
        "EMAIL_URL": smtp.url(),
        "EMAIL_FROM": "noreply@bastion.example",
    }
    worker = WorkerProcess(env, "--queues", "mail").start()
    try:
        # The app's side: no EMAIL_URL at all, so it could not send the message itself.
        settings = load_settings(DATABASE_URL=postgres_url, JOBS_ENABLED=True)
        bastion = Bastion(settings, configure_logging=False)
        async with bastion.lifespan():
            message = Message("ada@example.com", "Sent by the worker", "Hello from the queue.")
            await bastion.later(MAIL_TASK, **message.arguments())
            [received] = await smtp.arrived(1, within=30)
        assert received["Subject"] == "Sent by the worker"
        assert received["From"] == "noreply@bastion.example"
        assert smtp.deliveries[0].rcpt_tos == ["ada@example.com"]
        assert worker.alive()
        worker.stop()
        output = worker.output()
        assert "starting" in output  # the worker's log is there to read
        assert "Hello from the queue" not in output  # over SMTP the text is not logged
    finally:
        worker.close()
