"""What escapes an app inside ``protect()``: a client gone, a database out of reach, or a bug.

Without this rule each reaches the ASGI server, which logs a full traceback at
ERROR for it and answers with its own bare 500:

- A client that hangs up while its body is read (Starlette raises
  ``ClientDisconnect``) is not an error of ours: the request is recorded
  with status **499** (nginx's "client closed request") in its access line
  (INFO, with the request id) and in ``bastion_http_requests_total``. No
  other line is written.
- An exception that says the database cannot be reached (down, hung past
  its deadline, a connection lost: :func:`bastion.db._errors.is_unavailable`,
  whichever engine raised it, bastion's or the app's own) is a dependency
  fault, not a bug: the client gets **503** with ``Retry-After``
  (:data:`DATABASE_UNAVAILABLE`, answered like every refusal), the log gets
  one WARNING line on ``bastion.errors`` naming the exception's class, and
  ``bastion_database_unavailable_total`` counts it. The app's own 500 for it
  (Starlette's, FastAPI's, Litestar's) is replaced: the driver holds a 500
  back until the app is done, to know why it was sent.
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

A framework that answers an exception itself and does not raise it again
(Litestar) would hide the database's fault behind its 500: :func:`hear_exceptions`
gives such an app a hook (Litestar's ``after_exception``) that leaves the
exception in the scope, under :data:`bastion._driver.EXCEPTION_KEY`, for the
driver to find.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import Scope

from bastion._driver import EXCEPTION_KEY
from bastion.db._errors import is_unavailable
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


#: Seconds a client is asked to wait before trying again while the database is away.
RETRY_AFTER_SECONDS = 5

#: The database's fault: no detail about it, only that waiting helps.
DATABASE_UNAVAILABLE = Refusal(
    503,
    "Service Unavailable",
    "DATABASE_UNAVAILABLE",
    "the database could not be reached",
    f"try again in {RETRY_AFTER_SECONDS} seconds",
    headers=((b"retry-after", str(RETRY_AFTER_SECONDS).encode()),),
)


class FailureRule:
    """The failure rule's hook for the driver: what an exception out of the app becomes."""

    __slots__ = ("on_unavailable",)

    def __init__(self, on_unavailable: Callable[[], None] | None = None) -> None:
        """``on_unavailable`` counts each 503 (``bastion_database_unavailable_total``)."""
        self.on_unavailable = on_unavailable

    def on_error(
        self, scope: Scope, exc: Exception, answered: bool
    ) -> tuple[int | None, Refusal | None]:
        """The status to record (None: the one the app sent) and the answer to send, if any.

        A hang-up is recorded as 499 and answered by nobody; a database out
        of reach is logged once and answered 503 unless the answer had begun;
        a bug is logged once and answered with a clean 500 unless the app's
        answer had begun.
        """
        if isinstance(exc, ClientDisconnect):
            return CLIENT_GONE, None
        if is_unavailable(exc):
            log_unavailable(scope, exc)
            if answered:  # the client has its status; the counter counts 503s only
                return None, None
            if self.on_unavailable is not None:
                self.on_unavailable()
            return DATABASE_UNAVAILABLE.status, DATABASE_UNAVAILABLE
        log_failure(scope, exc)
        return None, (None if answered else INTERNAL_ERROR)


def hear_exceptions(app: object) -> None:
    """Give a framework that answers exceptions itself a hook that tells the driver (Litestar).

    Litestar turns an exception into its own 500 and raises nothing; it calls
    each of ``app.after_exception`` with the exception and the scope first.
    Any other app is left alone (Starlette and FastAPI raise the exception
    again after their 500, so the driver sees it anyway).
    """
    hooks = getattr(app, "after_exception", None)
    if isinstance(hooks, list) and _leave_in_scope not in hooks:
        hooks.append(_leave_in_scope)


async def _leave_in_scope(exc: Exception, scope: Any) -> None:
    scope[EXCEPTION_KEY] = exc


def log_unavailable(scope: Scope, exc: Exception) -> None:
    """The one WARNING line for a database out of reach: its class, the route, the request id."""
    name, method, route, request_id, fields = _context(scope, exc)
    logger.warning(
        "database unavailable (%s) in %s %s id=%s",
        name,
        method,
        route,
        request_id,
        extra=fields,
    )


def log_failure(scope: Scope, exc: Exception) -> None:
    """The one ERROR line for a bug: type, where it was raised, request id; never the message."""
    name, method, route, request_id, fields = _context(scope, exc)
    where = _where(exc.__traceback__)
    logger.error(
        "unhandled %s in %s %s at %s id=%s",
        name,
        method,
        route,
        where,
        request_id,
        extra={**fields, "where": where},
    )


def _context(scope: Scope, exc: Exception) -> tuple[str, str, str, str, dict[str, str]]:
    """The exception's full class name, the method, route and request id, and them as fields.

    Never the exception's message: messages of database and driver errors
    quote SQL parameters and URLs, which may hold secrets.
    """
    route = getattr(scope.get("route"), "path", None) or "<unmatched>"
    method = scope.get("method", "-")
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    request_id = scope.get("bastion.request_id", "-")
    fields = {
        "error": name,
        "method": method,
        "route": route,
        "path": scope.get("path", "")[:200],
        "request_id": request_id,
    }
    return name, method, route, request_id, fields


def _where(tb: TracebackType | None) -> str:
    """``package/module.py:42 in function``: the frame that raised, without reading source."""
    frames = traceback.StackSummary.extract(traceback.walk_tb(tb), lookup_lines=False)
    if not frames:
        return "-"
    last = frames[-1]
    parts = last.filename.split(os.sep)
    return f"{'/'.join(parts[-2:])}:{last.lineno} in {last.name}"
