"""Read request bodies with a size cap, and turn bad input into a one-line 4xx.

Handlers that parse JSON or forms all need the same three guards (a declared
length that is too big, a streamed body that grows too big, bytes that do not
parse), and each guard must answer with a short reason rather than a 500.
Raising :class:`BadRequest` from a handler does that; the app maps it to a
response in one place.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

__all__ = ["DEFAULT_MAX_BODY", "BadRequest", "read_body", "read_form", "read_json"]

DEFAULT_MAX_BODY = 64 * 1024


class BadRequest(Exception):
    """A client error with an HTTP status and a one-line, user-safe reason."""

    def __init__(self, reason: str, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


async def read_body(request: Request, max_bytes: int = DEFAULT_MAX_BODY) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("Content-Length is not a number")
        if int(declared) > max_bytes:
            raise BadRequest(f"body larger than {max_bytes} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BadRequest(f"body larger than {max_bytes} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_bytes: int = DEFAULT_MAX_BODY) -> Any:
    """The body decoded as JSON; 415 for another media type, 400 for malformed JSON."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise BadRequest("expected Content-Type: application/json", 415)
    raw = await read_body(request, max_bytes)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("body is not valid JSON") from None


async def read_form(request: Request, max_bytes: int = DEFAULT_MAX_BODY) -> dict[str, str]:
    """An urlencoded form as a dict (last value wins); 415 for any other encoding."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise BadRequest("expected an urlencoded form", 415)
    raw = await read_body(request, max_bytes)
    try:
        text = raw.decode("utf-8")
        return dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("form is not valid UTF-8 urlencoded data") from None
