"""JSON text to Python, with every refusal a 400 that says why.

``json.loads`` alone accepts too much and fails badly on some of it:

- nesting: its C scanner recurses once per level, so about 1,000 nested
  brackets (2 KB, far under any size cap) raise ``RecursionError``, a 500. The
  depth is measured here *before* parsing, by a linear scan that counts
  brackets outside strings; it cannot overflow, and the parser then never
  sees more than ``max_depth`` levels.
- ``NaN``, ``Infinity`` and numbers such as ``1e400`` (which become infinite
  floats) are not JSON (RFC 8259) and cannot be written back out by
  ``json.dumps(allow_nan=False)``; they are refused. Integers longer than
  Python's 4,300-digit limit are refused with their own reason.
- duplicate keys: the last one silently wins, so two readers of the same body
  (a proxy, a log pipeline, this app) may disagree on what it said. Refused.
- bytes: only UTF-8 (RFC 8259 section 8.1), decoded strictly, so encoded
  surrogates and other invalid sequences are refused rather than passed on.
- text: lone surrogates (``"\\ud800"``) and NUL are refused, naming the field
  (see :mod:`bastion.body._text`).

The cheap cases stay cheap: a body with no more brackets in total than
``max_depth`` skips the scan, and one without a ``\\u`` escape skips the walk
over the parsed strings.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

from bastion.body._errors import BadRequest, InvalidJson
from bastion.body._text import check_document, has_bad_text

DEFAULT_MAX_DEPTH = 32

#: A whole string, escapes included (an unterminated one runs to the end of the text).
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}.__getitem__
#: An escape that may decode to NUL or a surrogate; without one, no string needs a look.
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def nested_deeper_than(text: str, limit: int) -> bool:
    """Do brackets in ``text`` nest more than ``limit`` levels (brackets in strings aside)?

    Linear and without recursion: strings are cut out, then everything but
    the brackets, and the deepest running total of opens minus closes is the
    depth. Each step is a C loop (``re.sub``, ``accumulate`` over ``map``),
    about 4 ms for 64 KB of brackets. A text with no more brackets in total
    than ``limit`` is answered without any of it.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP, brackets)), default=0) > limit


def _refuse_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BadRequest("a number is too large")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= 40 and not has_bad_text(key) else key[:40] + "..."
                raise BadRequest(f"duplicate key {json.dumps(shown)}")
            seen.add(key)
    return document


def parse_json(data: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH, what: str = "body") -> Any:
    """``data`` as a JSON value, or :class:`BadRequest` naming ``what`` (``body``, ``value``).

    Raises :class:`InvalidJson` (a ``BadRequest``) when the text does not
    parse at all, and a plain ``BadRequest`` for anything it refuses after
    reading it (depth, numbers, duplicate keys, text).
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"{what} is not valid UTF-8") from None
    else:
        text = data
    if nested_deeper_than(text, max_depth):
        raise BadRequest(f"{what} is nested deeper than {max_depth} levels")
    try:
        document = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError:
        raise InvalidJson(f"{what} is not valid JSON") from None
    except ValueError:  # int() past sys.get_int_max_str_digits()
        raise BadRequest(f"{what} has a number with too many digits") from None
    # Decoded bytes cannot hold a surrogate, and a raw NUL does not parse: only
    # escapes can smuggle either in. A str may hold anything, so it is searched.
    risky = "\\u" in text and _RISKY_ESCAPE.search(text) is not None
    if risky or (isinstance(data, str) and has_bad_text(text)):
        check_document(document, what)
    return document
