"""Which bodies a reader accepts: its media type, UTF-8 only, no content coding.

A body in another charset or compressed would be read as garbage (or worse,
read differently by another component), so it is refused before it is read,
with 415 and the reason.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from bastion.body._errors import BadRequest

_UTF8 = frozenset({"utf-8", "utf8"})


def media_type(headers: Headers) -> tuple[str, dict[str, str]]:
    """``("application/json", {"charset": "utf-8"})`` from Content-Type, lower-cased."""
    kind, *parameters = headers.get("content-type", "").split(";")
    found: dict[str, str] = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        found[name.strip().lower()] = value.strip().strip('"').lower()
    return kind.strip().lower(), found


def require_media_type(headers: Headers, wanted: str, expected: str) -> None:
    """415 unless the body is ``wanted``, in UTF-8 (or no charset given), and not encoded.

    ``expected`` is how the refusal describes ``wanted`` to a person.
    """
    kind, parameters = media_type(headers)
    if kind != wanted:
        raise BadRequest(f"expected {expected}", 415)
    charset = parameters.get("charset")
    if charset is not None and charset not in _UTF8:
        raise BadRequest("charset must be utf-8", 415)
    coding = headers.get("content-encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise BadRequest("Content-Encoding is not supported; send the body as it is", 415)
