"""Mail over SMTP, as a job, to a real aiosmtpd server on loopback (inline jobs, in-process).

``Bastion.later("bastion.mail.send", ...)`` is how the accounts queue a
message; these tests queue through it and read what the server received:
the RFC 5322 message, STARTTLS and implicit TLS, AUTH, a retry after a
refused connection, the outcome counted in ``bastion_emails_total``, and
nothing of the password in any log line.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtplib import SMTPAuthenticationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion import Bastion
from bastion._parse.email import parse_email_url
from bastion.config import Settings, load_settings
from bastion.jobs._runner import run_attempt
from bastion.mail import MAIL_TASK, Message, SmtpTransport
from bastion.mail._smtp import CleartextLogin
from bastion.ops import Metrics
from tests.support.servers import free_port
from tests.support.smtp import SelfSigned, SmtpServer

SENDER = "Bastion <noreply@bastion.example>"
#: An SMTP password with characters that must be URL-encoded in EMAIL_URL.
SMTP_PASSWORD = "s3cret:pa@ss/w0rd-Zq8"
MESSAGE = Message(
    to="ada@example.com",
    subject="Your password was changed — naïve café",
    text="Hello Ada,\n\nYour password was changed at 10:42 UTC.\nNot you? Reset it: ünïcödé.\n",
)


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    def build(**values: Any) -> Settings:
        return load_settings(
            DATABASE_URL=f"sqlite:///{tmp_path / 'mail.db'}",
            EMAIL_FROM=SENDER,
            METRICS_ENABLED=True,
            **values,
        )

    return build


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Bastion]:
    """A Bastion with its jobs engine started (inline: JOBS_ENABLED is off), as an app has."""
    bastion = Bastion(settings, metrics=Metrics(), configure_logging=False)
    async with bastion.lifespan():
        yield bastion


def emails(bastion: Bastion, outcome: str) -> float:
    assert bastion.metrics is not None
    value = bastion.metrics.registry.get_sample_value("bastion_emails_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return SelfSigned.make(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def trust(certificate: SelfSigned, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust the self-signed certificate the way an operator would: ``SSL_CERT_FILE``."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert))


# -- delivery -------------------------------------------------------------------------------


async def test_a_queued_message_arrives_as_rfc_5322(settings_for: Callable[..., Settings]) -> None:
    with SmtpServer() as smtp:
        async with running(settings_for(EMAIL_URL=smtp.url())) as bastion:
            await bastion.later(MAIL_TASK, **MESSAGE.arguments())
            [message] = await smtp.arrived(1)
            # The server has the message once DATA ends; the client counts it once the
            # server's answer reaches it, a moment later.
            for _ in range(250):
                if emails(bastion, "sent"):
                    break
                await asyncio.sleep(0.02)
            sent = emails(bastion, "sent")
        [delivery] = smtp.deliveries
    assert delivery.mail_from == "noreply@bastion.example"
    assert delivery.rcpt_tos == ["ada@example.com"]
    assert message["From"] == SENDER
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == MESSAGE.subject
    assert abs(time.time() - parsedate_to_datetime(message["Date"]).timestamp()) < 300
    message_id = parseaddr(message["Message-ID"])[1]
    assert message_id.endswith("@bastion.example")
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().replace("\r\n", "\n") == MESSAGE.text  # CRLF on the wire
    assert sent == 1


async def test_a_refused_connection_is_retried_and_delivered_once(
    settings_for: Callable[..., Settings],
) -> None:
    """The server is down at the first attempt; the task's own rule (2 s) brings the retry."""
    port = free_port()
    smtp = SmtpServer(port=port)
    async with running(settings_for(EMAIL_URL=smtp.url())) as bastion:
        await bastion.later(MAIL_TASK, **MESSAGE.arguments())
        for _ in range(200):  # the first attempt fails on the closed port
            if emails(bastion, "failed"):
                break
            await asyncio.sleep(0.02)
        assert emails(bastion, "failed") == 1
        smtp.start()
        try:
            await smtp.arrived(1, within=15)
            await asyncio.sleep(0.5)  # room for a duplicate, if the job ran twice
            assert len(smtp.deliveries) == 1
            assert emails(bastion, "sent") == 1
            assert emails(bastion, "failed") == 1
        finally:
            smtp.stop()


async def test_starttls_and_auth(
    settings_for: Callable[..., Settings], certificate: SelfSigned, trust: None
) -> None:
    users = {"mailer@bastion.example": SMTP_PASSWORD}
    with SmtpServer(tls=certificate, users=users) as smtp:
        url = smtp.url("mailer@bastion.example", SMTP_PASSWORD)
        assert "%40" in url
        assert "%3A" in url
        async with running(settings_for(EMAIL_URL=url)) as bastion:
            await bastion.later(MAIL_TASK, **MESSAGE.arguments())
            await smtp.arrived(1)
    [delivery] = smtp.deliveries
    assert delivery.tls  # upgraded with STARTTLS before anything was said
    assert delivery.login == "mailer@bastion.example"
    assert smtp.auth_attempts == [("mailer@bastion.example", SMTP_PASSWORD)]


async def test_implicit_tls(
    settings_for: Callable[..., Settings], certificate: SelfSigned, trust: None
) -> None:
    with SmtpServer(tls=certificate, implicit_tls=True) as smtp:
        assert smtp.url().startswith("smtps://")
        async with running(settings_for(EMAIL_URL=smtp.url())) as bastion:
            await bastion.later(MAIL_TASK, **MESSAGE.arguments())
            await smtp.arrived(1)
    assert smtp.deliveries[0].tls


async def test_an_untrusted_certificate_is_refused(
    settings_for: Callable[..., Settings], certificate: SelfSigned
) -> None:
    """Without SSL_CERT_FILE the self-signed certificate does not verify: nothing is sent."""
    with SmtpServer(tls=certificate) as smtp:
        transport = SmtpTransport(parse_email_url(smtp.url()), SENDER)
        with pytest.raises(ssl.SSLError):
            await transport.send(MESSAGE)
    assert smtp.deliveries == []


async def test_no_password_in_clear_without_starttls() -> None:
    """A server that offers no STARTTLS is never handed the password."""
    with SmtpServer(users={"mailer": SMTP_PASSWORD}) as smtp:
        transport = SmtpTransport(parse_email_url(smtp.url("mailer", SMTP_PASSWORD)), SENDER)
        with pytest.raises(CleartextLogin):
            await transport.send(MESSAGE)
    assert smtp.auth_attempts == []
    assert smtp.deliveries == []


async def test_a_wrong_password_fails_the_attempt_and_is_never_logged(
    settings_for: Callable[..., Settings],
    certificate: SelfSigned,
    trust: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One attempt of the job, as the runner runs it (the retries are the jobs' tests)."""
    caplog.set_level(logging.DEBUG)
    wrong = "Wrong-" + SMTP_PASSWORD
    with SmtpServer(tls=certificate, users={"mailer": SMTP_PASSWORD}) as smtp:
        settings = settings_for(EMAIL_URL=smtp.url("mailer", wrong))
        bastion = Bastion(settings, metrics=Metrics(), configure_logging=False)
        try:
            with pytest.raises(SMTPAuthenticationError):
                await run_attempt(
                    bastion.jobs.tasks()[MAIL_TASK],
                    job_id=1,
                    attempt=1,
                    kwargs=MESSAGE.arguments(),
                    database=bastion.database,
                    settings=settings,
                    metrics=None,
                    worker="test",
                )
        finally:
            await bastion.database.dispose()
    assert emails(bastion, "failed") == 1
    assert emails(bastion, "sent") == 0
    assert smtp.auth_attempts
    assert set(smtp.auth_attempts) == {("mailer", wrong)}
    assert smtp.deliveries == []
    ours = [r for r in caplog.records if r.name != "mail.log"]  # all but the test server
    logged = " ".join(f"{r.getMessage()} {r.exc_text or ''}" for r in ours)
    assert "SMTPAuthenticationError" in logged  # the failure is told, by its type
    for secret in (wrong, SMTP_PASSWORD, "s3cret", MESSAGE.subject, MESSAGE.to):
        assert secret not in logged


# -- bounded waits ----------------------------------------------------------------------------


async def test_a_server_that_never_greets_times_out() -> None:
    """A hung server (TCP accepted, no banner) cannot hold the job: the connect timeout ends it."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        transport = SmtpTransport(
            parse_email_url(f"smtp://127.0.0.1:{port}"), SENDER, connect_timeout=0.5
        )
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await transport.send(MESSAGE)
        assert time.monotonic() - started < 10  # generous: the bound is 0.5 s
    finally:
        server.close()


async def test_a_server_hung_in_data_times_out() -> None:
    with SmtpServer(hold=True) as smtp:
        transport = SmtpTransport(parse_email_url(smtp.url()), SENDER, command_timeout=0.5)
        with pytest.raises(TimeoutError):
            await transport.send(MESSAGE)
        assert smtp.handler.data_started.is_set()
        assert smtp.deliveries == []


async def test_the_request_answers_before_the_smtp_server_accepts(
    settings_for: Callable[..., Settings],
) -> None:
    """Never inside the request: a route that queues mail answers while the server still holds."""
    with SmtpServer(hold=True) as smtp:
        async with running(settings_for(EMAIL_URL=smtp.url())) as bastion:

            async def notify(request: Request) -> JSONResponse:
                await bastion.later(MAIL_TASK, **MESSAGE.arguments())
                return JSONResponse({"status": "sent"}, status_code=202)

            app = bastion.protect(Starlette(routes=[Route("/notify", notify, methods=["POST"])]))
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 1)),
                base_url="http://127.0.0.1",
            ) as client:
                response = await client.post("/notify", headers={"Origin": "http://127.0.0.1"})
            assert response.status_code == 202
            assert smtp.deliveries == []  # answered; the server has accepted nothing yet
            for _ in range(250):  # the job did reach the server, which is holding it
                if smtp.handler.data_started.is_set():
                    break
                await asyncio.sleep(0.02)
            assert smtp.handler.data_started.is_set()
            smtp.release()
            await smtp.arrived(1)
