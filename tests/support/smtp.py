"""A real SMTP server on loopback (aiosmtpd), collecting what it is sent.

    with SmtpServer() as smtp:                      # plain, on a free port
        settings = Settings(email_url=smtp.url(), ...)
        ...
        [message] = smtp.wait_for(1)                # an email.message.EmailMessage
        assert message["To"] == "ada@example.com"

Options, each for one test of the client: ``tls`` (a :class:`SelfSigned`
certificate) offers STARTTLS, or with ``implicit_tls=True`` speaks TLS from
the first byte; ``users`` requires AUTH with these passwords; ``hold`` keeps
every DATA command waiting until :meth:`SmtpServer.release` (a slow or hung
server); ``port`` binds a port chosen earlier (a server that comes up late).

aiosmtpd's ``Controller`` runs the server on its own thread and event loop, so
a test's own loop (an in-process app) and a child process (``bastion
worker``) can both talk to it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.servers import free_port

__all__ = ["Delivery", "SelfSigned", "SmtpServer"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class SelfSigned:
    """A certificate for 127.0.0.1 and localhost, made by the openssl command (an EC key: fast)."""

    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> SelfSigned:
        cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", str(key), "-out", str(cert), "-days", "1",
                "-subj", "/CN=localhost",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )  # fmt: skip
        return cls(cert, key)

    def server_context(self) -> Any:
        import ssl

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass
class Delivery:
    """One message as the server took it: the envelope, the parsed message, and the session."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


@dataclass
class _Handler:
    hold: threading.Event | None
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    data_started: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_started.set()
        if self.hold is not None:
            await asyncio.to_thread(self.hold.wait)  # stop() sets it too: no thread is left
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data if session.authenticated else None
        with self.lock:
            self.deliveries.append(
                Delivery(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=parsed,
                    tls=server.transport.get_extra_info("ssl_object") is not None,
                    login=login if isinstance(login, str) else None,
                )
            )
        return "250 Message accepted for delivery"


class SmtpServer:
    def __init__(
        self,
        *,
        port: int | None = None,
        tls: SelfSigned | None = None,
        implicit_tls: bool = False,
        users: dict[str, str] | None = None,
        hold: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.users = users
        self.release_event = threading.Event() if hold else None
        self.handler = _Handler(self.release_event)
        #: The AUTH attempts the server saw (user, password), right or wrong.
        self.auth_attempts: list[tuple[str, str]] = []
        self.controller: Controller | None = None

    # -- lifetime ----------------------------------------------------------------------

    def start(self) -> SmtpServer:
        kwargs: dict[str, Any] = {}
        context = self.tls.server_context() if self.tls is not None else None
        if context is not None and not self.implicit_tls:
            kwargs["tls_context"] = context  # STARTTLS offered in the EHLO answer
        if self.users is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = self.tls is not None
        self.controller = Controller(
            self.handler,
            hostname=HOST,
            port=self.port,
            ssl_context=context if self.implicit_tls else None,
            server_hostname="localhost",
            **kwargs,
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.release_event is not None:
            self.release_event.set()
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what a client needs ---------------------------------------------------------------

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """The ``EMAIL_URL`` for this server (user and password URL-encoded)."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        userinfo = ""
        if user is not None:
            userinfo = quote(user, safe="")
            if password is not None:
                userinfo += ":" + quote(password, safe="")
            userinfo += "@"
        return f"{scheme}://{userinfo}{HOST}:{self.port}"

    def release(self) -> None:
        """Let held DATA commands finish (``hold=True``)."""
        assert self.release_event is not None
        self.release_event.set()

    # -- what it received --------------------------------------------------------------------

    @property
    def deliveries(self) -> list[Delivery]:
        with self.handler.lock:
            return list(self.handler.deliveries)

    @property
    def messages(self) -> list[EmailMessage]:
        return [delivery.message for delivery in self.deliveries]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once at least ``count`` have arrived; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"SMTP: {len(self.deliveries)} message(s) within {timeout}s, expected {count}"
                )
            time.sleep(0.02)
        return self.messages

    async def arrived(self, count: int, within: float = 10.0) -> list[EmailMessage]:
        """As :meth:`wait_for`, without blocking the test's event loop (an in-process app's)."""
        timeout = within
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"SMTP: {len(self.deliveries)} message(s) within {timeout}s, expected {count}"
                )
            await asyncio.sleep(0.02)
        return self.messages

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.auth_attempts.append((user, password))
        assert self.users is not None
        ok = self.users.get(user) == password
        return AuthResult(success=ok, handled=False, auth_data=user if ok else None)
