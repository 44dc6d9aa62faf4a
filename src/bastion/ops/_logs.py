"""Log output: one JSON object per line in production, readable lines in development.

Production logs are read by machines (Loki, Elasticsearch, CloudWatch), which
want one JSON object per line with stable keys. A developer at a terminal
wants a short line. Both come from the same records; only the formatter
changes. JSON also escapes every value, so nothing logged can forge a line.

The access line is written once per request, so it has a path of its own.
The request observer only notes a request's fields (:class:`AccessLines`);
at the end of the event loop's turn each becomes an :class:`AccessRecord`
(no caller lookup, no ``extra`` dict copied onto it, the message formatted
once), the JSON line is put together from a fixed template instead of
walking the record's attributes, and :class:`LineWriter` writes the turn's
lines together. Both give the very line the
general path gives, key for key (``tests/unit/test_access_log_format.py``).
Every field of an access record is safe by construction (method, route
template, numbers, a resolved IP, a checked request id) except the path,
which the client wrote; unless it is its route's template itself, it is
redacted when the record is made, so the whole line need not be scanned
again.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, ClassVar

from bastion._redact import RedactingFormatter, redact

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

ACCESS_LOGGER = "bastion.access"


class AccessRecord(logging.LogRecord):
    """One request's access line, built without ``Logger.info``'s general machinery.

    ``Logger.info`` looks up its caller's frame, builds a record and copies
    the ``extra`` dict onto it; here the record's constant attributes come
    from one prepared dict and the request's own are set directly. Handlers,
    filters and formatters see an ordinary record with the same attributes
    (``method``, ``route``, ``path``, ``status``, ``duration_ms``,
    ``client_ip``, ``request_id``) and the same message.
    """

    #: The attributes that are the same on every access record (see ``_refresh``).
    _constants: ClassVar[dict[str, Any]] = {}

    def __init__(  # noqa: PLR0917 - one argument per field of the line
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        seconds: float,
        client_ip: str | None,
        request_id: str,
        created: float | None = None,
    ) -> None:
        # No super().__init__(): every attribute it sets is set here, more cheaply.
        self.__dict__.update(self._constants)
        now = time.time() if created is None else created
        self.created = now
        self.msecs = int((now - int(now)) * 1000) + 0.0
        self.relativeCreated = (now - logging._startTime) * 1000  # type: ignore[attr-defined]
        self.thread = threading.get_ident()
        self.threadName = threading.current_thread().name
        if path != route:  # a path that is its route's own template has nothing to hide
            path = redact(path[:200])
        duration_ms = seconds * 1000
        # The template says which route answered; when it is not the path itself
        # (a parameter, <unmatched>, <rejected>), the line names the path too,
        # escaped (repr) so that a crafted path cannot forge a log line.
        self.msg = (
            f"{method} {route} {status} {duration_ms:.1f}ms client={client_ip or '-'} "
            f"id={request_id}"
            if path == route
            else f"{method} {route} {status} {duration_ms:.1f}ms client={client_ip or '-'} "
            f"id={request_id} path={path!r}"
        )
        self.method = method
        self.route = route
        self.path = path
        self.status = status
        self.duration_ms = round(duration_ms, 3)
        self.client_ip = client_ip
        self.request_id = request_id

    @classmethod
    def _refresh(cls) -> None:
        """The constant attributes, from a record made the ordinary way (again after a fork)."""
        sample = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 0, "", (), None)
        cls._constants = {
            key: value
            for key, value in vars(sample).items()
            if key not in {"created", "msecs", "relativeCreated", "thread", "threadName", "msg"}
        }


AccessRecord._refresh()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=AccessRecord._refresh)  # the pid is among the constants


class AccessLines:
    """The access lines of one event-loop turn, logged together at the turn's end.

    ``add`` only notes a request's fields (and the time), which costs far less
    than making and formatting a record in the middle of the request's work;
    the records are made and handed to the logger's handlers in one go at the
    end of the loop's turn (one ``call_soon``), where the logging code runs
    warm, one line after another. Every line keeps its own time, and lines
    keep their order. Called outside a running loop, ``add`` logs at once;
    ``drain`` logs whatever is noted, and runs at exit too, so that the lines
    of a loop that stopped before its turn ended are not lost.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._noted: deque[tuple[Any, ...]] = deque()
        #: The loop whose turn will end with ``drain``, if any.
        self._due: asyncio.AbstractEventLoop | None = None

    def add(  # noqa: PLR0917 - one argument per field of the line
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        seconds: float,
        client_ip: str | None,
        request_id: str,
    ) -> None:
        self._noted.append(
            (method, route, path, status, seconds, client_ip, request_id, time.time())
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: nothing to wait for
            self.drain()
            return
        if self._due is not loop:
            self._due = loop
            loop.call_soon(self.drain)

    def drain(self) -> None:
        """Log every noted line now, oldest first (``popleft`` is atomic: threads may share)."""
        self._due = None
        noted, handle = self._noted, self.logger.handle
        while True:
            try:
                fields = noted.popleft()
            except IndexError:
                return
            handle(AccessRecord(*fields))


#: bastion's access lines (the request observer's), on ``bastion.access``.
access_lines = AccessLines(logging.getLogger(ACCESS_LOGGER))
atexit.register(access_lines.drain)  # before logging's own shutdown, which is older


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if type(record) is AccessRecord and not record.exc_info:
            return _access_json(record)
        payload: dict[str, object] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def _access_json(record: AccessRecord) -> str:
    """The line ``json.dumps`` would write for this record, from a template."""
    client = record.client_ip
    return (
        f'{{"ts": "{_timestamp(record.created)}", "level": "info", "logger": "{record.name}", '
        f'"msg": {encode_basestring(record.getMessage())}, '
        f'"method": {encode_basestring(record.method)}, '
        f'"route": {encode_basestring(record.route)}, '
        f'"path": {encode_basestring(record.path)}, '
        f'"status": {int(record.status)}, '
        f'"duration_ms": {float(record.duration_ms)!r}, '
        f'"client_ip": {"null" if client is None else encode_basestring(client)}, '
        f'"request_id": {encode_basestring(record.request_id)}}}'
    )


_second: list[Any] = [None, ""]


def _timestamp(created: float) -> str:
    """``fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``, cached per second.

    The date and time of day change once a second; only the milliseconds are
    worked out per line, rounded to the microsecond first as ``datetime`` does.
    """
    whole = int(created)
    micros = round((created - whole) * 1e6)
    if micros >= 1_000_000:
        whole += 1
        micros -= 1_000_000
    if _second[0] != whole:
        _second[1] = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second[0] = whole
    return f"{_second[1]}.{micros // 1000:03d}+00:00"


#: Writes of at most this many bytes to a pipe are atomic (POSIX PIPE_BUF): several
#: workers writing to one container log never interleave inside a line.
_ATOMIC_WRITE = 4096


class LineWriter(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that writes the lines of one event-loop turn together.

    Writing is a system call per line with :class:`logging.StreamHandler`
    (it flushes after every record), and on a virtual machine a system call
    costs as much as formatting the line. Here a line logged from a thread
    running an event loop is kept until the end of the loop's current turn
    (one ``call_soon``) and written with the others of that turn, in writes
    of whole lines of at most 4096 bytes, so that no write is ever split by
    another worker's on a shared pipe. A line from anywhere else is written
    at once, after any kept ones, so the order never changes. ``flush`` (at
    exit too: ``logging.shutdown``) writes whatever is kept.
    """

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._kept: list[str] = []
        self._kept_bytes = 0
        #: The loop whose turn will end with writing the kept lines, if any.
        self._due: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        size = len(line) if line.isascii() else len(line.encode("utf-8", "replace"))
        if self._kept_bytes + size > _ATOMIC_WRITE:
            self._write_kept()
        self._kept.append(line)
        self._kept_bytes += size
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: nothing to wait for
            self._write_kept()
            return
        if self._due is not loop:  # a loop that stopped before its turn ended is no promise
            self._due = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._write_kept()

    def _write_kept(self) -> None:
        self._due = None
        if not self._kept:
            return
        text = "".join(self._kept)
        self._kept.clear()
        self._kept_bytes = 0
        try:
            self.stream.write(text)
            if hasattr(self.stream, "flush"):
                self.stream.flush()
        except Exception:  # as StreamHandler does: report, never raise into the app
            self.handleError(logging.makeLogRecord({"msg": text[:200]}))


class _LineFormatter(RedactingFormatter):
    """Redacts every line, except an access line, whose one client-written field already is."""

    def format(self, record: logging.LogRecord) -> str:
        if type(record) is AccessRecord and not record.exc_info:
            return self.inner.format(record)
        return super().format(record)


class _StderrWriter(LineWriter):
    """A :class:`LineWriter` to whatever ``sys.stderr`` is when it writes (until ``setStream``).

    ``StreamHandler`` keeps the stream it was given; a handler set up when the
    app is imported would keep writing to a stream that a test runner or a
    server has since replaced (and perhaps closed).
    """

    def __init__(self) -> None:
        super().__init__()
        self._chosen: Any = None  # StreamHandler's own sys.stderr is not a choice

    @property
    def stream(self) -> Any:
        return sys.stderr if self._chosen is None else self._chosen

    @stream.setter
    def stream(self, value: Any) -> None:
        self._chosen = value


#: The name of the handler :func:`configure_logging` puts on the ``bastion`` logger.
HANDLER_NAME = "bastion"


def configure_logging(json_lines: bool, level: int = logging.INFO) -> None:
    """Route bastion's loggers to stderr in the chosen format (idempotent).

    Only the ``bastion`` logger is touched (its one handler of this name is
    replaced, and its level set): the root logger, uvicorn's and the app's
    own are left as they are. Its lines stop there, as uvicorn's own loggers
    do: a framework that puts a handler on the root logger (Litestar does)
    would otherwise write every line twice. An app that wants bastion's lines
    in its own handlers does not call this (``Bastion(configure_logging=False)``).
    """
    handler = _StderrWriter()
    inner = (
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    # Redacted last, over the whole line: a library's message can quote a URL with its password.
    handler.setFormatter(_LineFormatter(inner))
    handler.set_name(HANDLER_NAME)
    root = logging.getLogger("bastion")
    for existing in list(root.handlers):
        if existing.get_name() == HANDLER_NAME:
            existing.flush()  # a LineWriter may keep lines for the end of the loop's turn
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def ensure_logging(json_lines: bool) -> bool:
    """:func:`configure_logging`, unless bastion's handler is already there; True if it ran.

    What :class:`bastion.Bastion` calls when it wraps an app, so that an app
    run by plain ``uvicorn module:app`` writes its access lines with no call
    of its own, while an explicit :func:`configure_logging` (the CLI's, or
    the app's with a level of its choosing) is kept as it was made.
    """
    if any(h.get_name() == HANDLER_NAME for h in logging.getLogger("bastion").handlers):
        return False
    configure_logging(json_lines)
    return True
