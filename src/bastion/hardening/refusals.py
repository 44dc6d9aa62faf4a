"""How the envelope answers a refusal: in the client's language, and saying what to do.

A refusal reaches three kinds of client. A script or an API client that
sends or accepts JSON gets ``{"error", "reason", "hint"}``; a browser
(``Accept: text/html``) gets a page; anything else (curl) gets two lines of
text. The reason is the stable name (``NO_ORIGIN``, ``HOST_NOT_ALLOWED``) in
all three, as in the log line and the metrics label. The hint says which
header to send, built from the configuration only (``APP_URL``), never from
what the client sent, so a refusal reflects nothing back.

The page is plain HTML that the default Content-Security-Policy allows; an
app passes ``error_page`` to the envelope to render its own styled one.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Scope

from bastion.hardening.csrf import Reason
from bastion.hardening.hosts import HostReason

__all__ = ["ErrorPage", "Refusal", "csrf_refusal", "host_refusal", "render"]

#: An app's own page for a refusal: (status, title, reason name, detail, hint) -> HTML.
ErrorPage = Callable[[int, str, str, str, str], bytes]


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    title: str
    reason: str
    detail: str
    hint: str


def csrf_refusal(reason: Reason, site: str) -> Refusal:
    if reason is Reason.BAD_HOST:
        hint = "send a Host header that names this site"
    elif reason is Reason.NO_ORIGIN:
        hint = f"send Origin: {site} with an unsafe request, as a browser does"
    else:
        hint = f"send Origin: {site}, or list your origin in TRUSTED_ORIGINS"
    return Refusal(403, "Forbidden (CSRF)", reason.name, reason.value, hint)


def host_refusal(reason: HostReason, detail: str, host: str) -> Refusal:
    if reason is HostReason.HOST_NOT_ALLOWED:
        hint = f"use the site's host, {host}, or list this one in ALLOWED_HOSTS"
    else:
        hint = f"send exactly one valid Host header, such as Host: {host}"
    return Refusal(400, "Bad Request", reason.name, detail, hint)


def _media(scope: Scope) -> str:
    """``json``, ``html`` or ``text``: what this client reads best."""
    accept = content_type = b""
    for name, value in scope["headers"]:
        if name == b"accept":
            accept = bytes(value).lower()
        elif name == b"content-type":
            content_type = bytes(value).lower()
    if b"json" in content_type or b"json" in accept:
        return "json"
    if b"text/html" in accept:
        return "html"
    return "text"


def render(refusal: Refusal, scope: Scope, page: ErrorPage | None) -> tuple[bytes, bytes]:
    """The body and its content type for ``refusal``, as the client asked."""
    media = _media(scope)
    if media == "json":
        body = {"error": refusal.title, "reason": refusal.reason, "hint": refusal.hint}
        return json.dumps(body).encode(), b"application/json"
    if media == "html":
        if page is not None:
            parts = (refusal.title, refusal.reason, refusal.detail, refusal.hint)
            return page(refusal.status, *parts), b"text/html; charset=utf-8"
        return _page(refusal), b"text/html; charset=utf-8"
    text = f"{refusal.title}: {refusal.detail} [{refusal.reason}]\n{refusal.hint}\n"
    return text.encode(), b"text/plain; charset=utf-8"


def _page(refusal: Refusal) -> bytes:
    escape = html.escape
    return (
        "<!doctype html>\n<html lang=en><meta charset=utf-8>"
        f"<title>{refusal.status} {escape(refusal.title)}</title>"
        f"<h1>{refusal.status} {escape(refusal.title)}</h1>"
        f"<p>{escape(refusal.detail)} (<code>{escape(refusal.reason)}</code>)</p>"
        f"<p>{escape(refusal.hint)}</p>\n"
    ).encode()
