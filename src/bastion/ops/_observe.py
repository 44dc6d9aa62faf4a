"""One observation per request: a request id, an access-log line, and the request metrics.

The driver (:class:`bastion._driver.Driver`) calls :meth:`RequestObserver.begin`
first, before the envelope screens the request, and
:meth:`RequestObserver.end` last, once the answer is complete, so refused
requests are logged and counted too. ``end`` reads the route *template*
the app's router left in the scope (Starlette's ``scope["route"]``,
Litestar's ``scope["path_template"]``; never the raw path, whose ids would
make a metric series per object) and the client IP the envelope resolved
in place, after the app has run. The driver stamps the id
on the response (``header``) unless the app set one itself.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Callable

from starlette.types import Scope

from bastion.hardening._proxy import TrustedProxies
from bastion.ops._logs import access_lines
from bastion.ops._metrics import Metrics

logger = logging.getLogger("bastion.access")

UNMATCHED = "<unmatched>"
REJECTED = "<rejected>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestObserver:
    """The observer's hooks for the driver: the begin and the end of each http request.

    See :meth:`RequestObserver.begin` and :meth:`RequestObserver.end`.
    """

    def __init__(
        self,
        *,
        metrics: Metrics | None,
        trusted_proxies: TrustedProxies,
        request_id_header: str = "x-request-id",
    ) -> None:
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

    def begin(self, scope: Scope) -> str:
        """The request's id: a trusted proxy's carries through (one id across hops), else a new one.

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

    def end(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        """The request's metrics and access line, once its answer is complete (or failed).

        ``status`` is 499 when the client went away first
        (:data:`bastion.ops._failures.CLIENT_GONE`).
        """
        route = scope.get("route")
        template = getattr(route, "path", None)
        if not isinstance(template, str):
            # Litestar names no route object; its router sets the matched handler's
            # template, with the converters stripped ("/items/{i}") and any router
            # prefix joined. A mounted app's is "": counted as unmatched.
            template = scope.get("path_template") or (
                REJECTED if "bastion.rejected" in scope else UNMATCHED
            )
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
        # Noted now, logged at the end of the loop's turn (bastion.ops._logs.AccessLines):
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
