"""One observation per request: a request id, an access-log line, and the request metrics.

This is the outermost layer, so it also sees requests the envelope refused.
It reads the route *template* Starlette's router leaves in ``scope["route"]``
and the client IP the envelope resolved in place, after the app has run.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.hardening.proxy import TrustedProxies
from bastion.ops.metrics import Metrics

__all__ = ["REJECTED", "UNMATCHED", "RequestObserver"]

logger = logging.getLogger("bastion.access")

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

    def _request_id(self, scope: Scope) -> str:
        """A trusted proxy's id carries through (one id across hops); otherwise a new one."""
        client = scope.get("client")
        if self.trusted_proxies.trusts_peer(client[0] if client else None):
            for name, value in scope["headers"]:
                if name == self.header:
                    text: str = bytes(value).decode("latin-1")
                    if _REQUEST_ID.fullmatch(text):
                        return text
                    break
        return uuid.uuid4().hex

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self._request_id(scope)
        scope["bastion.request_id"] = request_id
        header = (self.header, request_id.encode("latin-1"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(name.lower() == self.header for name, _ in headers):
                    headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None)
        if not isinstance(template, str):
            template = REJECTED if "bastion.rejected" in scope else UNMATCHED
        method = scope.get("method", "GET")
        method = method if method in _METHODS else "OTHER"
        if self.metrics is not None:
            self.metrics.observe_request(template, method, status, seconds)
        client = scope.get("client")
        logger.info(
            "%s %s %d %.1fms client=%s id=%s",
            method,
            template,
            status,
            seconds * 1000,
            client[0] if client else "-",
            request_id,
            extra={
                "method": method,
                "route": template,
                "path": scope.get("path", "")[:200],
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client_ip": client[0] if client else None,
                "request_id": request_id,
            },
        )
