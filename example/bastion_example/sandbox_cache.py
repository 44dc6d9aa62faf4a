"""/sandbox/cache and /api/sandbox/cache/{key}: try the cache by hand.

Sandbox keys live under their own namespace (``sandbox:``) so nothing typed
here can read or overwrite a key the app itself uses. Each request makes at
most one Valkey round trip, so a hung Valkey costs it one timeout at most.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bastion.body import BadRequest, InvalidJson, parse_json, read_form, read_json
from bastion.cache import JSON, get_cache
from bastion.responses import NO_STORE
from bastion_example.forms import form_page
from bastion_example.guards import guard_sandbox
from bastion_example.templating import templates

NAMESPACE = "sandbox:"
MAX_KEY_LENGTH = 128
MAX_VALUE_BYTES = 16 * 1024
MAX_TTL = 7 * 24 * 3600
MAX_BODY_BYTES = 4 * MAX_VALUE_BYTES  # room for JSON escaping of a maximal value
#: Nesting of a stored value; the API's body is one level more ({"value": ...}).
MAX_DEPTH = 32
_KEY_RE = re.compile(r"[A-Za-z0-9._:-]+")
KEY_RULE = f"key must be 1-{MAX_KEY_LENGTH} characters of A-Z a-z 0-9 . _ : -"


@dataclass(frozen=True, slots=True)
class Entry:
    """The state of one sandbox key, exactly as the JSON API reports it."""

    key: str
    value: JSON | None
    ttl: int | None
    enabled: bool

    def as_json(self) -> dict[str, JSON]:
        return {"key": self.key, "value": self.value, "ttl": self.ttl, "enabled": self.enabled}


def validate_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not _KEY_RE.fullmatch(key):
        raise BadRequest(KEY_RULE)
    return key


def validate_ttl(ttl: object) -> int:
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= MAX_TTL:
        raise BadRequest(f"ttl must be a whole number of seconds from 1 to {MAX_TTL}")
    return ttl


def validate_value(value: object) -> JSON:
    try:
        encoded = json.dumps(value, allow_nan=False)
    except ValueError:
        raise BadRequest("value must be finite JSON") from None
    if len(encoded.encode()) > MAX_VALUE_BYTES:
        raise BadRequest(f"value larger than {MAX_VALUE_BYTES} bytes", 413)
    if value is None:
        raise BadRequest("value must not be null; use DELETE to remove a key")
    return json.loads(encoded)  # type: ignore[no-any-return]


def _form_int(text: str) -> object:
    """Forms carry text; the API carries JSON numbers. Only the form converts.

    Only short digit strings become numbers: any TTL worth converting has a
    few digits, and int() refuses more than 4,300 (a 500, once).
    """
    digits = text.strip()
    return int(digits) if digits.isascii() and digits.isdigit() and len(digits) <= 12 else text


async def read_entry(key: str) -> Entry:
    cache = get_cache()
    value, ttl = await cache.json.get_with_ttl(NAMESPACE + key)
    return Entry(key, value, ttl, cache.enabled)


async def write_entry(key: str, value: JSON, ttl: int) -> Entry:
    cache = get_cache()
    stored = await cache.json.set(NAMESPACE + key, value, ttl)
    return Entry(key, value if stored else None, ttl if stored else None, cache.enabled)


async def delete_entry(key: str) -> Entry:
    cache = get_cache()
    await cache.json.delete(NAMESPACE + key)
    return Entry(key, None, None, cache.enabled)


async def api_entry(request: Request) -> Response:
    await guard_sandbox(request)
    key = validate_key(request.path_params["key"])
    # Explicit on every method: Starlette also routes HEAD here (for GET), and
    # a HEAD must read, never fall through to the DELETE branch.
    if request.method in ("GET", "HEAD"):
        entry = await read_entry(key)
    elif request.method == "PUT":
        body = await read_json(request, MAX_BODY_BYTES, MAX_DEPTH + 1)
        if not isinstance(body, dict) or "value" not in body or "ttl" not in body:
            raise BadRequest('body must be {"value": <json>, "ttl": <seconds>}', 422)
        entry = await write_entry(key, validate_value(body["value"]), validate_ttl(body["ttl"]))
    elif request.method == "DELETE":
        entry = await delete_entry(key)
    else:  # the route allows no other method; never reached
        raise HTTPException(405)
    return JSONResponse(entry.as_json(), headers=NO_STORE)


async def page(request: Request) -> Response:
    """The form, empty (GET and HEAD show it; only POST acts, see ``submit``)."""
    await guard_sandbox(request)
    return _render(request, {"form": {}})


async def submit(request: Request) -> Response:
    """The form works without JavaScript: each button posts, the page shows the result."""
    await guard_sandbox(request)
    form = await read_form(request)
    context: dict[str, object] = {"form": form}
    action = form.get("action", "")
    try:
        key = validate_key(form.get("key", ""))
        if action == "set":
            try:
                value = parse_json(form.get("value", ""), max_depth=MAX_DEPTH, what="value")
            except InvalidJson:
                raise BadRequest('value must be JSON, for example 42 or "text"') from None
            entry = await write_entry(
                key, validate_value(value), validate_ttl(_form_int(form.get("ttl", "")))
            )
            context["action"] = "stored" if entry.value is not None else "not stored"
        elif action == "delete":
            entry = await delete_entry(key)
            context["action"] = "deleted"
        elif action == "get":
            entry = await read_entry(key)
            context["action"] = "read"
        else:
            raise BadRequest("action must be set, get or delete")
    except BadRequest as exc:
        context["error"] = exc.reason
        return _render(request, context, exc.status_code)
    context["entry"] = entry
    context["entry_json"] = json.dumps(entry.value) if entry.value is not None else None
    return _render(request, context)


def _render(request: Request, context: dict[str, object], status: int = 200) -> Response:
    defaults: dict[str, object] = {"enabled": get_cache().enabled, "entry": None, "error": None}
    return templates.TemplateResponse(
        request, "sandbox_cache.html", {**defaults, **context}, status_code=status
    )


routes = [
    form_page("/sandbox/cache", page, submit, name="sandbox_cache"),
    Route("/api/sandbox/cache/{key}", api_entry, methods=["GET", "PUT", "DELETE"]),
]
