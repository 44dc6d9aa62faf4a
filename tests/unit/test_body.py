"""The body readers' pure parts: JSON text and urlencoded bytes in, a value or a 400 out.

Properties over generated documents check the parser against independent
oracles (``json`` itself for what is accepted, a plain recursive depth count
for nesting); named examples pin each refusal's reason. Nothing here may
raise anything but ``BadRequest``, whatever the input.
"""

from __future__ import annotations

import json
import math
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bastion.body import BadRequest, InvalidJson, parse_form, parse_json
from bastion.body._jsontext import DEFAULT_MAX_DEPTH, nested_deeper_than

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: JSON documents with valid text only (no lone surrogates, no NUL), nested a little.
valid_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | valid_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(valid_text, children, max_size=4)
    ),
    max_leaves=30,
)


def depth(value: Any) -> int:
    """The oracle: nesting depth by plain recursion (documents here are small)."""
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def has_bad_string(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(has_bad_string(v) for v in value)
    if isinstance(value, dict):
        return any(has_bad_string(k) or has_bad_string(v) for k, v in value.items())
    return False


@PROPERTY
@given(documents, st.sampled_from([0, 1, 2, 5, 32]))
def test_depth_scan_agrees_with_a_recursive_count(document: Any, limit: int) -> None:
    text = json.dumps(document)
    assert nested_deeper_than(text, limit) == (depth(document) > limit)


@PROPERTY
@given(documents)
def test_valid_documents_within_the_limit_read_back_unchanged(document: Any) -> None:
    text = json.dumps(document, ensure_ascii=False)
    assert parse_json(text.encode()) == json.loads(text)
    assert parse_json(text) == json.loads(text)


@PROPERTY
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
@example(b"[" * 100_000)
@example("\ud800")
@example(b'"\\ud800"')
@example(b"\xed\xa0\x80")
@example(b"1" * 5000)
@example(b"-" + b"9" * 4301)
@example(b"1e99999")
@example(b"[NaN]")
@example(b'{"": 1, "": 2}')
def test_anything_is_a_value_or_a_bad_request(data: bytes | str) -> None:
    refusal: BadRequest | None = None
    try:
        value = parse_json(data)
    except BadRequest as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.status_code == 400
        assert len(refusal.reason) < 120
        return
    # Whatever is accepted can be written back as strict JSON, in UTF-8.
    json.dumps(value, allow_nan=False).encode("utf-8")
    assert not has_bad_string(value)
    assert depth(value) <= DEFAULT_MAX_DEPTH


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("[" * 1000 + "]" * 1000, "body is nested deeper than 32 levels"),
        ('{"a": ' * 33 + "1" + "}" * 33, "body is nested deeper than 32 levels"),
        ('{"email": "a\\ud800@b.c"}', "email is not valid Unicode"),
        ('{"email": "a@b.c", "password": "\\udfff"}', "password is not valid Unicode"),
        ('{"value": {"items": [1, "x\\u0000"]}}', "value.items[1] contains a NUL character"),
        ('{"a b": ["\\ud800"]}', '["a b"][0] is not valid Unicode'),
        ('{"\\ud800": 1}', "a key in body is not valid Unicode"),
        ('["\\u0000"]', "body[0] contains a NUL character"),
        ('"\\ud800"', "body is not valid Unicode"),
        ('{"a": 1, "a": 2}', 'duplicate key "a"'),
        ("[NaN]", "NaN is not a JSON number"),
        ('{"t": -Infinity}', "-Infinity is not a JSON number"),
        ("1e400", "a number is too large"),
        ("9" * 5000, "body has a number with too many digits"),
        (b"\xff", "body is not valid UTF-8"),
        (b'"\xed\xa0\x80"', "body is not valid UTF-8"),  # an encoded surrogate
        ("[1,", "body is not valid JSON"),
        ("", "body is not valid JSON"),
    ],
)
def test_each_refusal_says_what_is_wrong(data: str | bytes, reason: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_json(data)
    assert refused.value.reason == reason
    assert refused.value.status_code == 400


def test_only_text_that_does_not_parse_is_invalid_json() -> None:
    with pytest.raises(InvalidJson):
        parse_json("{", what="value")
    with pytest.raises(BadRequest) as refused:
        parse_json("[" * 40 + "]" * 40, what="value")
    assert not isinstance(refused.value, InvalidJson)
    assert refused.value.reason == "value is nested deeper than 32 levels"


@pytest.mark.parametrize(
    "text",
    [
        '"\\ud83d\\ude00"',  # a surrogate pair is one character, not two lone halves
        '"\\\\u0000"',  # an escaped backslash, then the letters u0000
        '["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]',  # brackets inside a string
        '"\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["',  # after an escaped quote too
        "[" * 32 + "]" * 32,
        "1e-400",
    ],
)
def test_what_looks_hostile_but_is_not_is_accepted(text: str) -> None:
    assert parse_json(text) == json.loads(text)


def test_the_depth_check_does_not_recurse_and_is_linear() -> None:
    """Far past the interpreter's recursion limit, and 10x the text costs about 10x the time."""
    assert sys.getrecursionlimit() < 100_000

    def seconds(size: int) -> float:
        text = "[" * size + "]" * size
        started = time.perf_counter()
        assert nested_deeper_than(text, 32)
        with pytest.raises(BadRequest):
            parse_json(text)
        return time.perf_counter() - started

    seconds(1000)  # warm up
    small, large = min(seconds(50_000) for _ in range(3)), min(seconds(500_000) for _ in range(3))
    assert large < 30 * small + 0.05, (small, large)


def test_a_small_body_skips_the_scan() -> None:
    """The common case (a sign-in) costs a few microseconds over json.loads."""
    body = b'{"email": "someone@example.com", "password": "a long enough password"}'
    started = time.perf_counter()
    for _ in range(10_000):
        parse_json(body)
    per_call = (time.perf_counter() - started) / 10_000
    assert per_call < 100e-6, per_call


# -- forms --------------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=300))
@example(b"&" * 70)
@example(b"a=%ED%A0%80")
@example(b"a=%00")
@example(b"%00=1")
@example(b"a=1&a=2")
def test_any_form_bytes_are_a_dict_of_text_or_a_bad_request(raw: bytes) -> None:
    refusal: BadRequest | None = None
    try:
        form = parse_form(raw)
    except BadRequest as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.status_code == 400
        return
    for name, value in form.items():
        assert not has_bad_string(name)
        assert not has_bad_string(value)
        (name + value).encode("utf-8")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"email=a%00b", "email contains a NUL character"),
        (b"%00=1", "a field name contains a NUL character"),
        (b"password=%ED%A0%80", "form is not valid UTF-8 urlencoded data"),
        (b"email=%FF", "form is not valid UTF-8 urlencoded data"),
        (b"email=a&email=b", "email is sent more than once"),
        (b"&".join([b"f=1"] * 65), "form has more than 64 fields"),
    ],
)
def test_each_form_refusal_says_what_is_wrong(raw: bytes, reason: str) -> None:
    with pytest.raises(BadRequest) as refused:
        parse_form(raw)
    assert refused.value.reason == reason


def test_a_plain_form_reads_as_a_dict() -> None:
    assert parse_form(b"email=a%40b.c&password=p+w&note=") == {
        "email": "a@b.c",
        "password": "p w",
        "note": "",
    }
    assert parse_form(b"&".join([b"f%d=1" % i for i in range(63)]))["f62"] == "1"


def test_floats_stay_floats_and_finite() -> None:
    value = parse_json("[1.5, -0.0, 1e308]")
    assert value == [1.5, -0.0, 1e308]
    assert all(math.isfinite(v) for v in value)


def test_a_named_refusal_carries_its_name_for_json_clients() -> None:
    assert BadRequest("body must be an object").as_json() == {"error": "body must be an object"}
    named = BadRequest("password must be at least 15 characters", name="too_short")
    assert named.as_json() == {
        "error": "password must be at least 15 characters",
        "reason": "too_short",
    }
    assert named.status_code == 400
