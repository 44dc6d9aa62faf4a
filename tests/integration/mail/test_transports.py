"""Which transport the settings pick, and what each one leaves in the log and the metrics.

Development without ``EMAIL_URL``: the whole message in the log and the
outbox (the one place a reset link may appear). Production without it:
nothing sent, one WARNING per message holding nothing of the message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiosmtplib import SMTPConnectError

from bastion import Bastion
from bastion.config import Settings, load_settings
from bastion.mail import (
    ConsoleTransport,
    DroppedTransport,
    Message,
    SmtpTransport,
    deliver,
    outbox,
    outbox_entries,
    set_mail_listener,
    transport_for,
)
from bastion.ops import Metrics

PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "k7Qm2vX9pL4sT8wB1nR6yH3jF5dG0aZc-E_uIoKxVbNqMtWlYs",
}
Builder = Callable[..., Settings]
LINK = "https://app.example.com/reset-password?token=Tk-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
MESSAGE = Message(
    to="grace@example.com", subject="Reset your password", text=f"Open {LINK} within 30 minutes."
)


@pytest.fixture
def settings_for(tmp_path: Path) -> Iterator[Builder]:
    def build(**values: object) -> Settings:
        return load_settings(DATABASE_URL=f"sqlite:///{tmp_path / 'm.db'}", **values)

    yield build
    set_mail_listener(None)


def counted(bastion: Bastion, outcome: str) -> float:
    assert bastion.metrics is not None
    value = bastion.metrics.registry.get_sample_value("bastion_emails_total", {"outcome": outcome})
    return value or 0.0


def test_the_settings_pick_the_transport(settings_for: Builder) -> None:
    build = settings_for
    assert isinstance(transport_for(build()), ConsoleTransport)
    assert isinstance(transport_for(build(**PRODUCTION)), DroppedTransport)
    smtp = transport_for(build(**PRODUCTION, EMAIL_URL="smtps://u:p@smtp.example.com"))
    assert isinstance(smtp, SmtpTransport)
    assert (smtp.url.host, smtp.url.port, smtp.url.implicit_tls) == ("smtp.example.com", 465, True)
    assert isinstance(transport_for(build(EMAIL_URL="smtp://localhost:25")), SmtpTransport)


async def test_development_writes_the_whole_message_to_the_console_and_the_outbox(
    settings_for: Builder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(EMAIL_FROM="noreply@bastion.example")
    bastion = Bastion(settings, metrics=Metrics(), configure_logging=False)
    caplog.set_level(logging.INFO, logger="bastion.mail")
    await deliver(MESSAGE, transport_for(settings))
    [record] = [r for r in caplog.records if r.name == "bastion.mail"]
    assert record.levelno == logging.INFO
    line = record.getMessage()
    for part in ("noreply@bastion.example", MESSAGE.to, MESSAGE.subject, LINK):
        assert part in line
    assert outbox()[0] == MESSAGE
    assert outbox_entries()[0].message == MESSAGE
    second = Message("ada@example.com", "Second", "the newest first")
    await deliver(second, transport_for(settings))
    assert [entry.message for entry in outbox_entries()[:2]] == [second, MESSAGE]
    assert outbox_entries()[0].written_at >= outbox_entries()[1].written_at
    assert counted(bastion, "console") == 2
    await bastion.database.dispose()


async def test_production_without_email_url_drops_with_one_warning_and_no_content(
    settings_for: Builder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(**PRODUCTION)
    bastion = Bastion(settings, metrics=Metrics(), configure_logging=False)
    caplog.set_level(logging.DEBUG)
    before = len(outbox())
    await deliver(MESSAGE, transport_for(settings))
    mail = [r for r in caplog.records if r.name == "bastion.mail"]
    assert [r.levelno for r in mail] == [logging.WARNING]
    assert "EMAIL_URL" in mail[0].getMessage()
    everything = caplog.text
    for part in (MESSAGE.to, "grace", MESSAGE.subject, "Tk-9f8e7d6c", LINK):
        assert part not in everything
    assert len(outbox()) == before  # not in the development outbox either
    assert counted(bastion, "dropped") == 1
    assert counted(bastion, "console") == 0
    await bastion.database.dispose()


async def test_a_failed_delivery_is_counted_and_raised(settings_for: Builder) -> None:
    """``failed`` is an attempt that raised: the job's retry rule takes it from there."""
    settings = settings_for(EMAIL_URL="smtp://127.0.0.1:9")  # discard port: refused
    bastion = Bastion(settings, metrics=Metrics(), configure_logging=False)
    with pytest.raises(SMTPConnectError):
        await deliver(MESSAGE, transport_for(settings))
    assert counted(bastion, "failed") == 1
    assert counted(bastion, "sent") == 0
    await bastion.database.dispose()


async def test_without_metrics_nothing_is_counted_and_nothing_breaks(settings_for: Builder) -> None:
    settings = settings_for()
    bastion = Bastion(settings, configure_logging=False)  # METRICS_ENABLED is off
    assert bastion.metrics is None
    await deliver(MESSAGE, transport_for(settings))
    await bastion.database.dispose()
