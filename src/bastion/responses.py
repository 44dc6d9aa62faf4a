"""What every block's responses share: ``no-store``, and the one way a refusal is answered.

``NO_STORE`` goes on every answer that reflects the state of one user or of
the system at that instant (sign-in results, health, metrics, refusals):
shared caches and the browser's back button must not replay them.

A refusal (the envelope's 400 and 403, the sign-in guard's 400, 413 and 429,
the sign-in and sign-up limits' 429, the failure rule's 500 and 503) is a
:class:`Refusal`: a status, a title, a stable reason name (``NO_ORIGIN``,
``RATE_LIMITED``), what went wrong and what to do about it. Every one is
sent by :func:`send_refusal`, in the language the client reads best, as
:func:`negotiate` decides from one pass over the request headers:

- a script or an API client that sends or accepts JSON gets
  ``{"error", "reason", "hint"}`` (``error`` is the title);
- a browser (``Accept: text/html``) gets a page, the app's own when it
  passes an :data:`ErrorPage`;
- anything else (curl) gets two lines of text.

The hint is built from the configuration and the decision, never from what
the client sent, so a refusal reflects nothing back. This module imports no
other part of bastion, so that every layer can answer through it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = [
    "NO_STORE",
    "Refusal",
    "RefusalResponse",
    "send_refusal",
]

NO_STORE: Mapping[str, str] = MappingProxyType({"Cache-Control": "no-store"})

#: An app's own page for a refusal: (status, title, reason name, detail, hint) -> HTML.
ErrorPage = Callable[[int, str, str, str, str], bytes]

#: What a client reads best (see :func:`negotiate`).
Media = Literal["json", "html", "text"]

Headers = Iterable[tuple[bytes, bytes]]

_VARY = (b"vary", b"Accept, Content-Type")
_HTML = b"text/html; charset=utf-8"
_TEXT = b"text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request: what the client is told, in every language it may read."""

    status: int
    title: str
    #: The stable name, as in the log line and the metrics label (``HOST_NOT_ALLOWED``).
    reason: str
    detail: str
    hint: str
    #: Headers the refusal always carries (a 503's ``Retry-After``), raw and lower case.
    headers: tuple[tuple[bytes, bytes], ...] = ()


def negotiate(headers: Headers) -> Media:
    """``json``, ``html`` or ``text``: what the client that sent ``headers`` reads best.

    A client that sends JSON reads JSON whatever its Accept says (scripts
    rarely send one); otherwise Accept decides, and plain text is the default.
    """
    accept = content_type = b""
    for name, value in headers:
        if name == b"accept":
            accept = bytes(value).lower()
        elif name == b"content-type":
            content_type = bytes(value).lower()
    if b"json" in content_type or b"json" in accept:
        return "json"
    if b"text/html" in accept:
        return "html"
    return "text"


def render(refusal: Refusal, media: Media, page: ErrorPage | None = None) -> tuple[bytes, bytes]:
    """The body and its content type for ``refusal`` in ``media``."""
    if media == "json":
        body = {"error": refusal.title, "reason": refusal.reason, "hint": refusal.hint}
        return json.dumps(body).encode(), b"application/json"
    if media == "html":
        if page is not None:
            parts = (refusal.title, refusal.reason, refusal.detail, refusal.hint)
            return page(refusal.status, *parts), _HTML
        return _page(refusal), _HTML
    text = f"{refusal.title}: {refusal.detail} [{refusal.reason}]\n{refusal.hint}\n"
    return text.encode(), _TEXT


def _page(refusal: Refusal) -> bytes:
    """A plain page that the default Content-Security-Policy allows."""
    escape = html.escape
    return (
        "<!doctype html>\n<html lang=en><meta charset=utf-8>"
        f"<title>{refusal.status} {escape(refusal.title)}</title>"
        f"<h1>{refusal.status} {escape(refusal.title)}</h1>"
        f"<p>{escape(refusal.detail)} (<code>{escape(refusal.reason)}</code>)</p>"
        f"<p>{escape(refusal.hint)}</p>\n"
    ).encode()


async def send_small(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Headers = ()
) -> None:
    """A whole response in two messages, never stored by a cache; ``headers`` go last."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_refusal(
    scope: Scope,
    send: Send,
    refusal: Refusal,
    *,
    headers: Headers = (),
    page: ErrorPage | None = None,
) -> None:
    """Answer ``refusal`` in the client's language (``Vary`` says so), then ``headers``."""
    body, content_type = render(refusal, negotiate(scope["headers"]), page)
    await send_small(send, refusal.status, body, content_type, [_VARY, *refusal.headers, *headers])


def encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """``{"Retry-After": "5"}`` as raw ASGI headers (names lower case)."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class RefusalResponse(Response):
    """A refusal returned from a Starlette or FastAPI endpoint, sent by :func:`send_refusal`.

    The language is chosen when the response is sent, from the request's own
    headers, so an endpoint builds it without looking at Accept.
    """

    def __init__(self, refusal: Refusal, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code=refusal.status)
        self.refusal = refusal
        self.extra = encode_headers(headers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_refusal(scope, send, self.refusal, headers=self.extra)
        if self.background is not None:
            await self.background()
