"""The access line's own path (``AccessRecord``) writes the line the general one writes.

The request observer builds access records directly, and the JSON formatter
puts their line together from a template instead of ``json.dumps``. Both are
shortcuts, so both are checked against the general path: ``Logger.info``
with the same message and ``extra`` fields, formatted by ``json.dumps`` over
the record's attributes, then redacted over the whole line (what bastion did
before the shortcut, and still does for every other line).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bastion._redact import RedactingFormatter
from bastion.ops._logs import AccessRecord, JsonFormatter, _timestamp, configure_logging

Case = tuple[str, str, str, int, float, str | None, str]

CASES: list[Case] = [
    # method, route, path, status, seconds, client, request id
    ("GET", "/json", "/json", 200, 0.0012345, "127.0.0.1", "0123456789abcdef" * 2),
    ("POST", "<rejected>", "/submit", 403, 0.0004, "198.51.100.7", "lb-1234"),
    ("GET", "<unmatched>", '/no/such\npage"\\\t', 404, 1.5, None, "a" * 32),
    ("PUT", "/items/{id}", "/items/é✓\u2028", 500, 12.0, "2001:db8::1", "req.id:42"),
    ("OTHER", "/x", "/x", 499, 0.0, "10.0.0.1", "x"),
    ("GET", "<unmatched>", "/u/postgres://bob:hunter22@db/x", 404, 0.01, "::1", "b" * 32),
    ("GET", "<unmatched>", "/login;password=hunter22", 404, 0.2, "::1", "c" * 32),
]

KEYS = [
    "ts",
    "level",
    "logger",
    "msg",
    "method",
    "route",
    "path",
    "status",
    "duration_ms",
    "client_ip",
    "request_id",
]
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def general_line(case: Case) -> str:
    """The line ``Logger.info(..., extra=...)`` gives through the general JSON path."""
    method, route, path, status, seconds, client, request_id = case
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(JsonFormatter()))
    logger = logging.getLogger("bastion.access")
    logger.propagate = False  # only this handler, not bastion's own
    logger.addHandler(handler)
    try:
        message = "%s %s %d %.1fms client=%s id=%s"
        args: tuple[object, ...] = (
            method,
            route,
            status,
            seconds * 1000,
            client or "-",
            request_id,
        )
        if path != route:
            message += " path=%r"
            args = (*args, path)
        logger.info(
            message,
            *args,
            extra={
                "method": method,
                "route": route,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "client_ip": client,
                "request_id": request_id,
            },
        )
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue().rstrip("\n")


@pytest.fixture
def production() -> Iterator[io.StringIO]:
    """bastion's production logging (``configure_logging(json_lines=True)``) into a buffer."""
    configure_logging(json_lines=True)
    root = logging.getLogger("bastion")
    handler = next(h for h in root.handlers if h.get_name() == "bastion")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    yield buffer
    root.removeHandler(handler)


@pytest.mark.parametrize("case", CASES)
def test_the_access_line_is_the_general_line(case: Case, production: io.StringIO) -> None:
    logging.getLogger("bastion.access").handle(AccessRecord(*case))
    (fast,) = production.getvalue().rstrip("\n").split("\n")  # U+2028 is no line break
    general = general_line(case)
    fast_fields, general_fields = json.loads(fast), json.loads(general)
    assert list(fast_fields) == KEYS
    assert TS.fullmatch(fast_fields.pop("ts"))
    general_fields.pop("ts")
    assert fast_fields == general_fields
    # Byte for byte what json.dumps writes for those fields, in that order.
    assert fast == json.dumps(json.loads(fast), ensure_ascii=False)
    assert "hunter22" not in fast


def test_the_development_line_is_the_general_message() -> None:
    configure_logging(json_lines=False)
    root = logging.getLogger("bastion")
    handler = next(h for h in root.handlers if h.get_name() == "bastion")
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        logging.getLogger("bastion.access").handle(AccessRecord(*CASES[2]))
        logging.getLogger("bastion.access").handle(AccessRecord(*CASES[0]))
    finally:
        root.removeHandler(handler)
    unmatched, plain = buffer.getvalue().splitlines()
    assert unmatched.endswith(
        f"INFO    bastion.access: GET <unmatched> 404 1500.0ms client=- id={'a' * 32} "
        "path='/no/such\\npage\"\\\\\\t'"
    )
    assert plain.endswith(
        f"bastion.access: GET /json 200 1.2ms client=127.0.0.1 id={'0123456789abcdef' * 2}"
    )


@pytest.mark.parametrize(
    "created",
    [
        0.0,
        1.0,
        1764630000.0,
        1764630000.0004999,
        1764630000.9995,
        1764630000.9999996,
        1.5e9 + 0.123,
    ],
)
def test_the_timestamp_is_isoformat_in_milliseconds(created: float) -> None:
    expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    assert _timestamp(created) == expected
