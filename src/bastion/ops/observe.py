"""One observation per request: a request id, an access-log line, and the request metrics.

This is the outermost layer, so it also sees requests the envelope refused.
It reads the route *template* Starlette's router leaves in ``scope["route"]``
and the client IP the envelope resolved in place, after the app has run.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.hardening.proxy import TrustedProxies
from bastion.ops.logs import access_lines
from bastion.ops.metrics import Metrics

__all__ = ["CLIENT_GONE", "REJECTED", "UNMATCHED", "RequestObserver"]

logger = logging.getLogger("bastion.access")

#: The status recorded for a request whose client went away before the answer (nginx's 499).
CLIENT_GONE = 499
UNMATCHED = "<unmatched>"
REJECTED = "<rejected>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestObserver:
    """Pure ASGI: wraps the envelope (which wraps the app)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics | None,
        trusted_proxies: TrustedProxies,
        request_id_header: str = "x-request-id",
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.trusted_proxies = trusted_proxies
        self.header = request_id_header.lower().encode("latin-1")
        self._ids = _RandomIds()
        self._next_id = self._ids.next
        # The one call per request into the metrics, resolved once: the plain
        # per-process series itself when there is one (no method hop).
        self._observe: Callable[[str, str, int, float], None] | None = None
        if metrics is not None:
            series = metrics.request_series
            self._observe = series.observe if series is not None else metrics.observe_request

    def request_id(self, scope: Scope) -> str:
        """A trusted proxy's id carries through (one id across hops); otherwise a new one.

        The header is looked for first and the peer checked only when there is
        one, since most requests carry none. A new id is 16 random bytes in
        hex, the same 32 characters as ``uuid4().hex`` (see :class:`_RandomIds`).
        """
        wanted = self.header
        for name, value in scope["headers"]:
            if name == wanted:
                client = scope.get("client")
                if self.trusted_proxies.trusts_peer(client[0] if client else None):
                    text: str = bytes(value).decode("latin-1")
                    if _REQUEST_ID.fullmatch(text):
                        return text
                break
        return self._next_id()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self.request_id(scope)
        # Published for the layers inside (the failure guard's log line names it).
        scope["bastion.request_id"] = request_id
        name = self.header
        header = (name, request_id.encode("latin-1"))
        status = 500  # what the server answers if the app fails before responding

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", ())
                if not _has_header(headers, name):
                    message = {**message, "headers": [*headers, header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            # The client hung up: nobody is left to answer, and it is no error of
            # ours. The access line (INFO, with the id) and the metrics say 499.
            status = CLIENT_GONE
        finally:
            self.record(scope, status, time.perf_counter() - started, request_id)

    def record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        """The request's metrics and access line, once its answer is complete (or failed)."""
        route = scope.get("route")
        template = getattr(route, "path", None)
        if not isinstance(template, str):
            template = REJECTED if "bastion.rejected" in scope else UNMATCHED
        method = scope.get("method", "GET")
        method = method if method in _METHODS else "OTHER"
        if self._observe is not None:
            self._observe(template, method, status, seconds)
        # Building the line and its fields costs more than the check; skip both
        # when nothing listens at INFO (logging not configured, or set higher).
        if not logger.isEnabledFor(logging.INFO):
            return
        client = scope.get("client")
        path: str = scope.get("path", "")[:200]
        # Noted now, logged at the end of the loop's turn (bastion.ops.logs.AccessLines):
        # no caller lookup, no ``extra`` dict, no formatting in the middle of the request.
        access_lines.add(
            method, template, path, status, seconds, client[0] if client else None, request_id
        )


class _RandomIds:
    """Request ids from the OS's CSPRNG, fetched 256 at a time.

    ``os.urandom`` is a system call, and system calls are dear on virtual
    machines; one call per 256 requests keeps the ids as unpredictable as
    ``uuid4`` while costing a list pop. ``deque.popleft`` is atomic, so two
    threads never get the same id.
    """

    __slots__ = ("_ready",)

    BATCH = 256

    def __init__(self) -> None:
        self._ready: deque[str] = deque()

    def next(self) -> str:
        """A new id (a bound method: calling it costs less than calling the instance)."""
        try:
            return self._ready.popleft()
        except IndexError:
            text = os.urandom(16 * self.BATCH).hex()
            self._ready.extend(text[i : i + 32] for i in range(32, len(text), 32))
            return text[:32]


def _has_header(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> bool:
    """Is ``wanted`` (lower case) among ``headers``, whatever case the app used?"""
    size = len(wanted)
    for key, _ in headers:  # noqa: SIM110 - a plain loop: no generator object per response
        if len(key) == size and key.lower() == wanted:
            return True
    return False
