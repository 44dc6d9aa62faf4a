"""bastion.body: the one way request bodies are read, for the library and the example alike.

Handlers call :func:`read_json` or :func:`read_form` and raise
:class:`BadRequest`; the app maps that to a one-line 4xx in one place. JSON
inside a form field goes through :func:`parse_json`, and a body a middleware
has already read through :func:`parse_json` or :func:`parse_form`. Bad input
of any kind (too big, nested too deep, not UTF-8, not Unicode, duplicate
names, not numbers) never reaches a handler's logic, a database driver or a
password hasher.
"""

from __future__ import annotations

from bastion.body._errors import BadRequest, InvalidJson
from bastion.body._jsontext import parse_json
from bastion.body._read import parse_form, read_body, read_form, read_json

__all__ = [
    "BadRequest",
    "InvalidJson",
    "parse_form",
    "parse_json",
    "read_body",
    "read_form",
    "read_json",
]
