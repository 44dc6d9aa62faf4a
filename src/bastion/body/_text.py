"""Text that is valid Unicode: no lone surrogate and no NUL in any string a body carries.

JSON's ``\\ud800`` escape decodes to a lone surrogate, a Python string that
cannot be encoded as UTF-8: the database driver and the password hasher then
fail with ``UnicodeEncodeError``, a 500 deep inside a dependency. NUL is
refused by PostgreSQL in text columns and truncates strings in C libraries.
Both are refused here, once, with a 400 that names the field, so no handler
downstream ever sees them.

The walk over a parsed document is iterative (an explicit stack), for the same
reason the nesting check is: nothing that reads a body may recurse on it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from bastion.body._errors import BadRequest

#: A NUL or any surrogate code point (paired ones never survive decoding as two).
_BAD = re.compile("[\x00\ud800-\udfff]")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-]{1,40}")


def has_bad_text(text: str) -> bool:
    return _BAD.search(text) is not None


def _problem(text: str) -> str:
    found = _BAD.search(text)
    assert found is not None
    return "contains a NUL character" if found.group() == "\x00" else "is not valid Unicode"


def field_path(parent: str, key: str | int) -> str:
    """``email``, ``value.items[2]``: a field's name as a reason shows it.

    Keys are client text, so only plain names are shown as they are; any
    other key is shown JSON-escaped (ASCII only) and cut short.
    """
    if isinstance(key, int):
        return f"{parent}[{key}]"
    shown = key if _PLAIN_NAME.fullmatch(key) else f"[{json.dumps(key)[:40]}]"
    if not parent:
        return shown
    return parent + shown if shown.startswith("[") else f"{parent}.{shown}"


def check_fields(fields: Iterable[tuple[str, str]]) -> None:
    """Refuse a form field whose name or value is not valid text."""
    for name, value in fields:
        if has_bad_text(name):
            raise BadRequest(f"a field name {_problem(name)}")
        if has_bad_text(value):
            raise BadRequest(f"{field_path('', name)} {_problem(value)}")


def check_document(document: Any, what: str) -> None:
    """Refuse the first string (key or value) in a parsed JSON document that is not valid text.

    ``what`` names the document itself (``body``, ``value``); the fields of a
    top-level object are named by their key alone when ``what`` is ``body``,
    since that is how an API's documentation names them.
    """
    root = "" if what == "body" else what
    stack: list[tuple[str, Any]] = [(root, document)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if has_bad_text(item):
                raise BadRequest(f"{path or what} {_problem(item)}")
        elif isinstance(item, dict):
            for key, value in reversed(item.items()):
                if has_bad_text(key):
                    raise BadRequest(f"a key in {path or what} {_problem(key)}")
                stack.append((field_path(path, key), value))
        elif isinstance(item, list):
            stack.extend(
                (field_path(path or what, i), v) for i, v in reversed(list(enumerate(item)))
            )
