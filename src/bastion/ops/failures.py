"""What escapes an app inside ``protect()``: a client that went away, or a bug.

Without this layer both reach the ASGI server, which logs a full traceback at
ERROR for each and, for a bug, answers with its own bare 500:

- A client that hangs up while its body is read (Starlette raises
  ``ClientDisconnect``) is not an error of ours, and not this layer's to
  record: it passes on to the request observer, which records status **499**
  (nginx's "client closed request") in its access line (INFO, with the
  request id) and in ``bastion_http_requests_total``. No other line is
  written.
- Any other exception is a bug. The client gets a clean 500 (the app's own
  error response if it sent one, as Starlette does with a 500 handler,
  otherwise a short one from here, with the security headers since this
  layer sits inside the envelope), the log gets one ERROR line on
  ``bastion.errors`` with the request id, the exception's type and where it
  was raised, and the request is counted with status 500. The exception's
  message is not logged: messages of database and driver errors quote SQL
  parameters, which may be secrets.

Between the two layers nothing reaches the server, which so never writes a
traceback. The guard watches ``send`` for the start of a response (a bug
after the answer began can only be logged: the client has its status).
"""

from __future__ import annotations

import logging
import os
import traceback
from types import TracebackType

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FailureGuard", "internal_error", "log_failure"]

logger = logging.getLogger("bastion.errors")

_TEXT = b"Internal Server Error\n"
_JSON = b'{"error": "internal server error"}'


class FailureGuard:
    """Pure ASGI, innermost in ``protect()``: exceptions become a status, never a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def watching(message: Message) -> None:
            nonlocal answered
            answered = True  # the first message of a response is always its start
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except ClientDisconnect:
            raise  # the observer records it as 499; there is nobody to answer
        except Exception as exc:
            log_failure(scope, exc)
            if not answered:  # nothing was sent: answer for the app
                await internal_error(scope, send)


def log_failure(scope: Scope, exc: Exception) -> None:
    """The one ERROR line for a bug: type, where it was raised, request id; never the message."""
    route = getattr(scope.get("route"), "path", None) or "<unmatched>"
    method = scope.get("method", "-")
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    where = _where(exc.__traceback__)
    request_id = scope.get("bastion.request_id", "-")
    logger.error(
        "unhandled %s in %s %s at %s id=%s",
        name,
        method,
        route,
        where,
        request_id,
        extra={
            "error": name,
            "where": where,
            "method": method,
            "route": route,
            "path": scope.get("path", "")[:200],
            "request_id": request_id,
        },
    )


def _where(tb: TracebackType | None) -> str:
    """``package/module.py:42 in function``: the frame that raised, without reading source."""
    frames = traceback.StackSummary.extract(traceback.walk_tb(tb), lookup_lines=False)
    if not frames:
        return "-"
    last = frames[-1]
    parts = last.filename.split(os.sep)
    return f"{'/'.join(parts[-2:])}:{last.lineno} in {last.name}"


async def internal_error(scope: Scope, send: Send) -> None:
    """A short 500 in JSON or text, as the client's Accept asks, through ``send``."""
    accept = b""
    for name, value in scope["headers"]:
        if name == b"accept":
            accept = value
    body, kind = (
        (_JSON, b"application/json") if b"json" in accept else (_TEXT, b"text/plain; charset=utf-8")
    )
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
