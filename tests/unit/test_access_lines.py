"""``AccessLines``: a request's access line is noted, then logged at the end of the loop's turn.

The lines must all arrive, in order, each with the time of its own request,
whether the loop turns again or not; outside a loop a line is logged at once.
A handler on ``bastion.access`` records what the logger is handed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest

from bastion.ops._logs import AccessLines, AccessRecord


class Collecting(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[tuple[AccessLines, Collecting]]:
    logger = logging.getLogger("bastion.access.test")
    handler = Collecting()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield AccessLines(logger), handler
    logger.removeHandler(handler)


def note(lines: AccessLines, number: int) -> None:
    lines.add("GET", "/items/{id}", f"/items/{number}", 200, 0.001, "127.0.0.1", f"id-{number}")


def test_the_lines_of_a_turn_are_logged_at_its_end_in_order(
    collected: tuple[AccessLines, Collecting],
) -> None:
    lines, handler = collected

    async def turn() -> int:
        for number in range(3):
            note(lines, number)
        during = len(handler.records)
        await asyncio.sleep(0)
        return during

    before = time.time()
    assert asyncio.run(turn()) == 0
    assert [r.request_id for r in handler.records] == ["id-0", "id-1", "id-2"]  # type: ignore[attr-defined]
    assert all(isinstance(r, AccessRecord) for r in handler.records)
    assert all(before <= r.created <= time.time() for r in handler.records)
    assert handler.records[0].getMessage() == (
        "GET /items/{id} 200 1.0ms client=127.0.0.1 id=id-0 path='/items/0'"
    )


def test_each_line_keeps_the_time_of_its_own_request(
    collected: tuple[AccessLines, Collecting],
) -> None:
    lines, handler = collected

    async def turn() -> float:
        note(lines, 1)
        noted_by = time.time()
        while time.time() < noted_by + 0.05:  # the turn goes on, busy; the line was noted before
            pass
        await asyncio.sleep(0)
        return noted_by

    noted_by = asyncio.run(turn())
    (record,) = handler.records
    assert record.created <= noted_by


def test_outside_a_loop_a_line_is_logged_at_once(
    collected: tuple[AccessLines, Collecting],
) -> None:
    lines, handler = collected
    note(lines, 7)
    assert [r.request_id for r in handler.records] == ["id-7"]  # type: ignore[attr-defined]


def test_drain_logs_the_lines_of_a_loop_that_stopped_before_its_turn_ended(
    collected: tuple[AccessLines, Collecting],
) -> None:
    lines, handler = collected
    loop = asyncio.new_event_loop()

    def last_request() -> None:
        note(lines, 9)
        loop.stop()

    try:
        loop.call_soon(last_request)
        loop.run_forever()
    finally:
        loop.close()
    assert handler.records == []
    lines.drain()  # registered with atexit for the module's own access_lines
    assert [r.request_id for r in handler.records] == ["id-9"]  # type: ignore[attr-defined]

    async def next_turn() -> None:  # a later loop is not fooled by the one that stopped
        note(lines, 10)
        await asyncio.sleep(0)

    asyncio.run(next_turn())
    assert [r.request_id for r in handler.records] == ["id-9", "id-10"]  # type: ignore[attr-defined]
