"""What escapes an app inside ``protect()``: a client that went away, or a bug.

Without this rule both reach the ASGI server, which logs a full traceback at
ERROR for each and, for a bug, answers with its own bare 500:

- A client that hangs up while its body is read (Starlette raises
  ``ClientDisconnect``) is not an error of ours: the request is recorded
  with status **499** (nginx's "client closed request") in its access line
  (INFO, with the request id) and in ``bastion_http_requests_total``. No
  other line is written.
- Any other exception is a bug. The client gets a clean 500 (the app's own
  error response if it sent one, as Starlette does with a 500 handler,
  otherwise :data:`INTERNAL_ERROR`, answered like every refusal and with
  the security headers), the log gets one ERROR line on ``bastion.errors``
  with the request id, the exception's type and where it was raised, and
  the request is counted with status 500. The exception's message is not
  logged: messages of database and driver errors quote SQL parameters,
  which may be secrets.

Nothing reaches the server, which so never writes a traceback. The driver
(:class:`bastion._driver.Driver`) calls :meth:`FailureRule.on_error` with
whether the app's answer had begun (a bug after that can only be logged:
the client has its status), records the status and sends the answer.
"""

from __future__ import annotations

import logging
import os
import traceback
from types import TracebackType

from starlette.requests import ClientDisconnect
from starlette.types import Scope

from bastion.responses import Refusal

logger = logging.getLogger("bastion.errors")

#: The status recorded for a request whose client went away before the answer (nginx's 499).
CLIENT_GONE = 499

#: A bug's answer: nothing about the bug, only where to look (the response's request id).
INTERNAL_ERROR = Refusal(
    500,
    "Internal Server Error",
    "INTERNAL_ERROR",
    "the server failed to answer this request",
    "try again later; the failure is logged under this response's X-Request-Id",
)


class FailureRule:
    """The failure rule's hook for the driver: what an exception out of the app becomes."""

    __slots__ = ()

    def on_error(
        self, scope: Scope, exc: Exception, answered: bool
    ) -> tuple[int | None, Refusal | None]:
        """The status to record (None: the one the app sent) and the answer to send, if any.

        A hang-up is recorded as 499 and answered by nobody; a bug is logged
        once and answered with a clean 500 unless the app's answer had begun.
        """
        if isinstance(exc, ClientDisconnect):
            return CLIENT_GONE, None
        log_failure(scope, exc)
        return None, (None if answered else INTERNAL_ERROR)


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
