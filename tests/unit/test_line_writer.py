"""``LineWriter``: the lines of one event-loop turn in one write, whole, in order, never lost.

A recording stream stands in for stderr (it keeps every ``write`` call), so
each test can say how many writes there were and what each held.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from bastion.ops._logs import LineWriter


class Recording:
    """A text stream that remembers each write as one entry."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        self.flushes += 1


def writer() -> tuple[logging.Logger, Recording, LineWriter]:
    stream = Recording()
    handler = LineWriter(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"test.line_writer.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, stream, handler


def test_lines_of_one_loop_turn_are_one_write_at_its_end() -> None:
    logger, stream, _ = writer()

    async def turn() -> list[str]:
        for number in range(5):
            logger.info("line %d", number)
        held = list(stream.writes)
        await asyncio.sleep(0)  # the turn ends: the kept lines go out
        return held

    held = asyncio.run(turn())
    assert held == []
    assert stream.writes == ["line 0\nline 1\nline 2\nline 3\nline 4\n"]


def test_no_write_is_longer_than_a_pipe_writes_atomically() -> None:
    logger, stream, _ = writer()
    long = "x" * 1000

    async def turn() -> None:
        for number in range(20):
            logger.info("%02d %s", number, long)
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert len(stream.writes) > 1
    assert all(len(text.encode()) <= 4096 for text in stream.writes)
    assert all(text.endswith("\n") for text in stream.writes)  # whole lines only
    lines = "".join(stream.writes).splitlines()
    assert [line[:2] for line in lines] == [f"{n:02d}" for n in range(20)]


def test_multibyte_lines_are_counted_in_bytes() -> None:
    logger, stream, _ = writer()

    async def turn() -> None:
        for _ in range(10):
            logger.info("é" * 700)  # 1400 bytes, 700 characters
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert all(len(text.encode()) <= 4096 for text in stream.writes)
    assert "".join(stream.writes) == ("é" * 700 + "\n") * 10


def test_a_line_from_outside_a_loop_is_written_at_once_after_the_kept_ones() -> None:
    logger, stream, _ = writer()
    done = threading.Event()

    async def turn() -> None:
        logger.info("from the loop")

        def elsewhere() -> None:
            logger.info("from a thread")
            done.set()

        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join()

    asyncio.run(turn())
    assert done.is_set()
    assert stream.writes == ["from the loop\nfrom a thread\n"]


def test_kept_lines_are_written_by_flush_when_the_loop_never_turns_again() -> None:
    logger, stream, handler = writer()

    loop = asyncio.new_event_loop()

    def last_words() -> None:
        logger.info("the last line before the loop stopped")
        loop.stop()  # this turn is the last: the write due at its end never runs

    try:
        loop.call_soon(last_words)
        loop.run_forever()
    finally:
        loop.close()
    assert stream.writes == []
    handler.flush()  # what logging.shutdown() does at exit
    assert stream.writes == ["the last line before the loop stopped\n"]


def test_a_new_loop_writes_its_own_lines_after_one_stopped_early() -> None:
    logger, stream, _ = writer()
    first = asyncio.new_event_loop()

    def stopped_early() -> None:
        logger.info("kept by a loop that stopped")
        first.stop()

    try:
        first.call_soon(stopped_early)
        first.run_forever()
    finally:
        first.close()

    async def turn() -> None:
        logger.info("from the next loop")
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert stream.writes == ["kept by a loop that stopped\nfrom the next loop\n"]
