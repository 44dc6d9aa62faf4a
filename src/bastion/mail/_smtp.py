"""SMTP with ``EMAIL_URL``: one connection per message, every wait bounded.

The message is sent by a job (``bastion.mail.send``), so a failure here
raises and the job retries it (a refused connection, a timeout, a 4xx from
the server). Nothing here logs the message, the address or an exception's
text: an SMTP error can quote the recipient, and the job runner logs only the
exception's type.

aiosmtplib is imported when the first message goes out, not with this module:
an app that never sends mail does not pay for it at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from bastion._parse.email import EmailURL
from bastion.mail._message import Message

if TYPE_CHECKING:
    import ssl

    import aiosmtplib

logger = logging.getLogger("bastion.mail")

#: Seconds to open the TCP connection (and finish TLS for ``smtps``).
CONNECT_TIMEOUT = 10.0
#: Seconds for each command's answer (EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA).
COMMAND_TIMEOUT = 30.0
#: Seconds for the whole delivery: a server that answers each command just in time
#: must still not hold a job (and a worker's slot) for minutes.
SEND_DEADLINE = 60.0


class CleartextLogin(RuntimeError):
    """The server offered no STARTTLS, and the password would cross the network in clear."""


class SmtpTransport:
    """Deliver over SMTP: STARTTLS when offered (``smtp://``), TLS from the start (``smtps://``).

    With a user in the URL it logs in, but only on an encrypted connection:
    a server, or a machine in the middle, that leaves STARTTLS out of its
    EHLO answer is not handed the password in clear (:class:`CleartextLogin`;
    a relay on the same host without TLS takes a URL without a user).

    ``tls_context``: the certificates to trust; default, the system's
    (``ssl.create_default_context``, which honours ``SSL_CERT_FILE``).
    """

    outcome = "sent"

    def __init__(
        self,
        url: EmailURL,
        sender: str,
        *,
        tls_context: ssl.SSLContext | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        command_timeout: float = COMMAND_TIMEOUT,
        deadline: float = SEND_DEADLINE,
    ) -> None:
        self.url = url
        self.sender = sender
        self.tls_context = tls_context
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.deadline = deadline

    async def send(self, message: Message) -> None:
        import aiosmtplib  # noqa: PLC0415 - see the module's doc

        email = message.compose(self.sender)
        url = self.url
        client = aiosmtplib.SMTP(
            hostname=url.host,
            port=url.port,
            use_tls=url.implicit_tls,
            start_tls=None,  # upgrade when the server offers STARTTLS
            timeout=self.command_timeout,
            tls_context=self.tls_context,
        )
        async with asyncio.timeout(self.deadline):
            try:
                await client.connect(timeout=self.connect_timeout)
                if url.user:
                    if not _encrypted(client):
                        logger.warning(
                            "mail: %s offered no STARTTLS; the password is not sent in clear "
                            "(use smtps:// or a server with STARTTLS)",
                            url.host,
                        )
                        raise CleartextLogin(
                            f"{url.host} offered no STARTTLS; not sending the password in clear"
                        )
                    await client.login(url.user, url.password or "")
                await client.send_message(email)
            except BaseException:
                client.close()  # no QUIT to a server that just failed us: it could hang too
                raise
        await _quit(client)


def _encrypted(client: aiosmtplib.SMTP) -> bool:
    return client.get_transport_info("sslcontext") is not None


async def _quit(client: aiosmtplib.SMTP) -> None:
    """Say QUIT after a delivery; the message is accepted, so a server that errs now is ignored."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await client.quit()
    client.close()
