"""The sign-in guard as ASGI middleware, for login routes bastion did not write.

A team's login endpoint often belongs to a library (fastapi-users, a vendor
SDK) whose handler they cannot edit. The guard stands in front of it:

1. For a guarded route, it reads the body (bounded) and takes the account
   from one field of the form or JSON (``username`` for fastapi-users' OAuth2
   password form), normalised as bastion counts accounts.
2. It counts the attempt against the per-IP and per-account limits through
   :class:`~bastion.guard.SignInGuard`. Refused: a 429 with the RateLimit
   headers and ``Retry-After``, and the handler never runs.
3. Allowed: the handler runs on the same body, and the guard watches its
   answer. A failure (by default 400, 401 or 403; fastapi-users answers 400
   ``LOGIN_BAD_CREDENTIALS``) is audited as ``auth.sign_in.failed`` with the
   client IP; a 2xx or 3xx as ``auth.sign_in.succeeded``. The audit row is
   written after the response has gone out, so the client never waits on it.

It must run inside the envelope (``protect``), which resolves the client IP
through the trusted proxies before the guard reads it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.db import DATABASE_ERRORS
from bastion.guard.core import Client, SignInGuard
from bastion.ratelimit import Decision, rate_limit_headers
from bastion.responses import NO_STORE

__all__ = ["LoginGuard", "LoginRoute", "default_failed"]

logger = logging.getLogger("bastion.guard")

#: A login body is a few hundred bytes; anything much larger is not a sign-in.
MAX_LOGIN_BODY = 16 * 1024
#: How much of an error response the failure predicate gets to see.
_PEEK = 4096
_REFUSED = json.dumps({"detail": "too many sign-in attempts; try again later"}).encode()


def default_failed(status: int, body: bytes) -> bool:
    """A failed sign-in: 400, 401 or 403 (fastapi-users: 400 ``LOGIN_BAD_CREDENTIALS``)."""
    return status in (400, 401, 403)


@dataclass(frozen=True)
class LoginRoute:
    """One login endpoint to guard.

    ``account_field`` names the account in the form or JSON body. ``failed`` tells a
    failed sign-in from the handler's status and the start of its body; a
    status of 2xx or 3xx that is not ``failed`` counts as a success.
    """

    path: str
    account_field: str = "username"
    failed: Callable[[int, bytes], bool] = default_failed
    methods: frozenset[str] = field(default_factory=lambda: frozenset({"POST"}))


class LoginGuard:
    """Pure ASGI: guards the listed login routes of ``app``; every other request passes through."""

    def __init__(self, app: ASGIApp, guard: SignInGuard, routes: Iterable[LoginRoute]) -> None:
        self.app = app
        self.guard = guard
        self.routes = {route.path: route for route in routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if route is None or scope["method"] not in route.methods:
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            await _answer(send, 413, b'{"detail": "body too large for a sign-in"}', {})
            return
        client = _client(scope)
        account = _account(scope, body, route.account_field)
        decision = await self.guard.attempt(client, account)
        if not decision.allowed:
            headers = {**NO_STORE, **rate_limit_headers(decision)}
            await _answer(send, 429, _REFUSED, headers)
            return
        seen = _Response()
        await self.app(scope, _replay(body, receive), seen.wrap(send))
        await self._audit(route, client, account, decision, seen)

    async def _audit(
        self, route: LoginRoute, client: Client, account: str, decision: Decision, seen: _Response
    ) -> None:
        """Write the outcome; the response is already out, so a database fault only logs."""
        status = seen.status
        try:
            if decision.remaining == 0:
                async with self.guard.database.session() as db:
                    await self.guard.tripped(db, client, account, decision)
            if route.failed(status, bytes(seen.peek)):
                await self.guard.failed(client, account, "rejected_by_app", decision)
            elif 200 <= status < 400:
                await self.guard.succeeded(client, account)
        except DATABASE_ERRORS as exc:
            logger.warning(
                "sign-in guard: could not audit a sign-in on %s (%s)",
                route.path,
                type(exc).__name__,
            )


class _Response:
    """The status of the handler's answer, and the first bytes of its body."""

    __slots__ = ("peek", "status")

    def __init__(self) -> None:
        self.status = 500
        self.peek = bytearray()

    def wrap(self, send: Send) -> Send:
        async def watching(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            elif message["type"] == "http.response.body" and len(self.peek) < _PEEK:
                self.peek += message.get("body", b"")[: _PEEK - len(self.peek)]
            await send(message)

        return watching


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None once it passes :data:`MAX_LOGIN_BODY`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b"".join(chunks)
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_LOGIN_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the handler the body already read, then the real channel (for a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return bytes(value).decode("latin-1")
    return None


def _client(scope: Scope) -> Client:
    peer = scope.get("client")
    return Client(ip=peer[0] if peer else None, user_agent=_header(scope, b"user-agent"))


def _account(scope: Scope, body: bytes, name: str) -> str:
    """The account named in the body, normalised (trimmed, case-folded); "" if there is none.

    Whatever the body, the per-IP limit still counts the attempt: an attacker
    gains nothing by sending an account the guard cannot read.
    """
    media, _, _ = (_header(scope, b"content-type") or "").partition(";")
    media = media.strip().lower()
    value: object = None
    try:
        if media == "application/x-www-form-urlencoded":
            value = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)).get(name)
        elif media == "application/json":
            parsed = json.loads(body)
            value = parsed.get(name) if isinstance(parsed, dict) else None
        elif media == "multipart/form-data":
            value = _multipart_field(_header(scope, b"content-type") or "", body, name)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, str):
        return ""
    return value.strip().casefold()[:254]


def _multipart_field(content_type: str, body: bytes, name: str) -> str | None:
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == name:
            payload = part.get_payload(decode=True)
            return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else None
    return None


async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
