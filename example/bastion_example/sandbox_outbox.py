"""The outbox part of /sandbox/accounts, and ``GET /api/sandbox/accounts/outbox``.

In development without ``EMAIL_URL`` bastion writes each message to the
console (:class:`bastion.mail.ConsoleTransport`) and keeps the last ones in
this process's outbox; this page shows them, newest first, so a developer
can follow a password-reset link without a mail server. The outbox holds
reset links: it is a sandbox page (404 in production for all but
administrators, where the console transport is never used anyway) and its
answers are never cached. With ``JOBS_ENABLED`` the messages are written by
the worker process, so this app's outbox stays empty: the page says so.

``outbox_context`` is what the page's template fragment
(``sandbox_accounts_outbox.html``) needs, for any page that includes it::

    GET /api/sandbox/accounts/outbox
      -> {"transport": "console", "messages": [{"to", "subject", "text", "written_at"}]}
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.config import Settings
from bastion.mail import outbox_entries
from bastion.responses import NO_STORE
from bastion_example.guards import guard_sandbox

__all__ = ["outbox_context", "routes"]


def _transport(settings: Settings) -> str:
    """Where this app's mail goes: the names of bastion.mail's transports' outcomes."""
    if settings.EMAIL_URL is not None:
        return "smtp"
    return "dropped" if settings.is_production else "console"


def outbox_context(request: Request) -> dict[str, Any]:
    """The fragment's context: the transport, whether jobs run elsewhere, and the messages."""
    settings: Settings = request.app.state.settings
    return {
        "mail_transport": _transport(settings),
        "mail_in_worker": settings.JOBS_ENABLED,
        "outbox": outbox_entries(),
    }


async def api_outbox(request: Request) -> Response:
    await guard_sandbox(request)
    context = outbox_context(request)
    body = {
        "transport": context["mail_transport"],
        "messages": [
            {
                "to": entry.message.to,
                "subject": entry.message.subject,
                "text": entry.message.text,
                "written_at": entry.written_at.isoformat(),
            }
            for entry in context["outbox"]
        ],
    }
    return JSONResponse(body, headers=NO_STORE)


routes = [
    Route("/api/sandbox/accounts/outbox", api_outbox, methods=["GET"]),
]
