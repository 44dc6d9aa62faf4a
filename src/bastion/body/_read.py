"""Read request bodies with a size cap, and refuse anything odd with a one-line 4xx.

Every endpoint that takes a body reads it through :func:`read_json` or
:func:`read_form` (or :func:`read_body` for raw bytes), so the guards hold
everywhere at once: a declared length that is too big, a streamed body that
grows too big, the wrong media type, charset or content coding, too many
form fields, duplicate names, nesting that would overflow a parser, numbers
that are not numbers, and text that is not valid Unicode.

A client that hangs up while its body is read raises Starlette's
``ClientDisconnect`` out of here on purpose: there is nobody to answer, and
``protect()`` records the request as 499 (see :mod:`bastion.ops._failures`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from bastion.body._errors import BadRequest
from bastion.body._jsontext import DEFAULT_MAX_DEPTH, parse_json
from bastion.body._media import require_media_type
from bastion.body._text import check_fields, field_path

DEFAULT_MAX_BODY = 64 * 1024
MAX_FORM_FIELDS = 64
#: More digits than this is more than any cap we would set (and int() has limits).
_MAX_LENGTH_DIGITS = 18


async def read_body(request: Request, max_bytes: int = DEFAULT_MAX_BODY) -> bytes:
    """The raw body, refused with 413 as soon as it is known to exceed ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        # isdigit() alone accepts "²" and other non-ASCII digits that int() refuses.
        if not (declared.isascii() and declared.isdigit()):
            raise BadRequest("Content-Length is not a number")
        if len(declared) > _MAX_LENGTH_DIGITS or int(declared) > max_bytes:
            raise BadRequest(f"body larger than {max_bytes} bytes", 413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BadRequest(f"body larger than {max_bytes} bytes", 413)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(
    request: Request, max_bytes: int = DEFAULT_MAX_BODY, max_depth: int = DEFAULT_MAX_DEPTH
) -> Any:
    """The body as JSON; 415 for another media type, 400 with a reason for anything refused."""
    require_media_type(request.headers, "application/json", "Content-Type: application/json")
    return parse_json(await read_body(request, max_bytes), max_depth=max_depth)


async def read_form(
    request: Request, max_bytes: int = DEFAULT_MAX_BODY, max_fields: int = MAX_FORM_FIELDS
) -> dict[str, str]:
    """An urlencoded form as a dict; 415 for any other encoding, 400 for anything refused."""
    require_media_type(request.headers, "application/x-www-form-urlencoded", "an urlencoded form")
    return parse_form(await read_body(request, max_bytes), max_fields=max_fields)


def parse_form(raw: bytes, *, max_fields: int = MAX_FORM_FIELDS) -> dict[str, str]:
    """Urlencoded bytes as a dict, or :class:`BadRequest` saying what is wrong with them.

    A name sent twice is refused rather than resolved (first or last wins?),
    since the forms this reads have one field per name. For a body already
    read (a middleware's), :func:`read_form` for a request.
    """
    if raw.count(b"&") >= max_fields:
        raise BadRequest(f"form has more than {max_fields} fields")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("form is not valid UTF-8 urlencoded data") from None
    check_fields(pairs)
    form = dict(pairs)
    if len(form) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise BadRequest(f"{field_path('', name)} is sent more than once")
            seen.add(name)
    return form
