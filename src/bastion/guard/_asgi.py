"""The sign-in guard as ASGI middleware, for login routes bastion did not write.

A team's login endpoint often belongs to a library (fastapi-users, a vendor
SDK) whose handler they cannot edit. The guard stands in front of it:

1. For a guarded route, it reads the body through :mod:`bastion.body`, the
   one way bodies are read (at most :data:`MAX_LOGIN_BODY` bytes, 413 past
   it), and takes the account from one field of the form, JSON or multipart
   body (``username`` for fastapi-users' OAuth2 password form), normalised
   as bastion counts accounts. A form or JSON body that every bastion
   endpoint would refuse (not UTF-8, nested too deep, a name sent twice, a
   lone surrogate or NUL) is refused here too, with the same 400: the guard
   and the handler must not read two different accounts from one body.
2. It counts the attempt against the per-IP and per-account limits through
   :class:`~bastion.guard.SignInGuard`. Refused: a 429 with the RateLimit
   headers and ``Retry-After``, and the handler never runs.

Every refusal is answered as bastion answers them all
(:func:`bastion.responses.send_refusal`): a JSON client gets ``{"error",
"reason", "hint"}`` with ``reason`` one of ``BODY_TOO_LARGE``,
``INVALID_BODY``, ``UNSUPPORTED_MEDIA_TYPE`` or ``RATE_LIMITED``. A request
the guard answers itself is named by its login route (``scope["route"]``), so
the access line and the metrics count it under that path, not ``<unmatched>``.
3. Allowed: the handler runs on the same body, and the guard watches its
   answer. A failure (by default 400, 401 or 403; fastapi-users answers 400
   ``LOGIN_BAD_CREDENTIALS``) is audited as ``auth.sign_in.failed`` with the
   client IP; a 2xx or 3xx as ``auth.sign_in.succeeded``. The audit row is
   written after the response has gone out, so the client never waits on it.

It must run inside the envelope (``protect``), which resolves the client IP
through the trusted proxies before the guard reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.body import BadRequest, parse_form, parse_json, read_body
from bastion.body._media import media_type, require_media_type
from bastion.body._text import check_fields
from bastion.db import DATABASE_ERRORS
from bastion.guard._core import Client, FailReason, SignInGuard, rate_limited
from bastion.ratelimit import Decision, rate_limit_headers
from bastion.responses import encode_headers, send_refusal

logger = logging.getLogger("bastion.guard")

#: A login body is a few hundred bytes; anything much larger is not a sign-in.
MAX_LOGIN_BODY = 16 * 1024
#: How much of an error response the failure predicate gets to see.
_PEEK = 4096
_FORM = "application/x-www-form-urlencoded"
_JSON_MEDIA = "application/json"
_MULTIPART = "multipart/form-data"


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
        request = Request(scope, receive)
        try:
            body = await read_body(request, MAX_LOGIN_BODY)
            account = _account(request.headers, body, route.account_field)
        except BadRequest as exc:
            _label(scope, route)
            await send_refusal(scope, send, exc.refusal())
            return
        client = _client(request.headers, scope)
        decision = await self.guard.attempt(client, account)
        if not decision.allowed:
            _label(scope, route)
            headers = encode_headers(rate_limit_headers(decision))
            await send_refusal(scope, send, rate_limited(decision), headers=headers)
            return
        seen = _Response()
        try:
            await self.app(scope, _replay(body, receive), seen.wrap(send))
        finally:
            scope.setdefault("route", route)  # a router that names no route (Litestar)
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
                await self.guard.failed(client, account, FailReason.REJECTED_BY_APP, decision)
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


def _label(scope: Scope, route: LoginRoute) -> None:
    """Name the request by its login route, for the access line and every metric label.

    The request observer labels a request by ``scope["route"].path``, which
    the app's router sets; a request the guard answers itself never reaches
    the router, and would be counted as ``<unmatched>``: a dashboard by route
    would never show brute force against the login route. A
    :class:`LoginRoute` has the ``path`` the observer reads.
    """
    scope["route"] = route


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


def _client(headers: Headers, scope: Scope) -> Client:
    peer = scope.get("client")
    return Client(ip=peer[0] if peer else None, user_agent=headers.get("user-agent"))


def _account(headers: Headers, body: bytes, name: str) -> str:
    """The account named in the body, normalised (trimmed, case-folded); "" if there is none.

    A form or JSON body is read by :mod:`bastion.body`'s rules, which refuse
    what they always refuse (:class:`BadRequest`). Any other body (a media
    type the guard does not read, a JSON body whose top level is not an
    object) names no account, and the per-IP limit still counts the
    attempt: an attacker gains nothing by sending an account the guard
    cannot read.
    """
    kind, _ = media_type(headers)
    value: Any = None
    if kind == _FORM:
        require_media_type(headers, _FORM, "an urlencoded form")
        value = parse_form(body).get(name)
    elif kind == _JSON_MEDIA:
        require_media_type(headers, _JSON_MEDIA, "Content-Type: application/json")
        parsed = parse_json(body)
        value = parsed.get(name) if isinstance(parsed, dict) else None
    elif kind == _MULTIPART:
        value = _multipart_field(headers.get("content-type", ""), body, name)
    if not isinstance(value, str):
        return ""
    return value.strip().casefold()[:254]


def _multipart_field(content_type: str, body: bytes, name: str) -> str | None:
    """The one text field called ``name`` of a multipart body, by the same rules as a form's."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", errors="replace")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return None
    found: list[str] = []
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") != name:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            found.append(payload.decode("utf-8"))
        except UnicodeDecodeError:
            raise BadRequest(f"{name} is not valid UTF-8") from None
    if len(found) > 1:
        raise BadRequest(f"{name} is sent more than once")
    check_fields((name, value) for value in found)
    return found[0] if found else None
