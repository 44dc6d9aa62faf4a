"""Log output: one JSON object per line in production, readable lines in development.

Production logs are read by machines (Loki, Elasticsearch, CloudWatch), which
want one JSON object per line with stable keys. A developer at a terminal
wants a short line. Both come from the same records; only the formatter
changes. JSON also escapes every value, so nothing logged can forge a line.

The access line is written once per request, so it has a path of its own
(:class:`AccessRecord`): the request observer builds the record directly
(no caller lookup, no ``extra`` dict copied onto it), with its message
formatted once, and the JSON line is put together from a fixed template
instead of walking the record's attributes. Both give the very line the
general path gives, key for key (``tests/unit/test_access_log_format.py``).
Every field of an access record is safe by construction (method, route
template, numbers, a resolved IP, a checked request id) except the path,
which the client wrote; it is redacted when the record is made, so the whole
line need not be scanned again.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, ClassVar

from bastion.redact import RedactingFormatter, redact

__all__ = ["AccessRecord", "JsonFormatter", "configure_logging"]

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
    ) -> None:
        # No super().__init__(): every attribute it sets is set here, more cheaply.
        self.__dict__.update(self._constants)
        now = time.time()
        self.created = now
        self.msecs = int((now - int(now)) * 1000) + 0.0
        self.relativeCreated = (now - logging._startTime) * 1000  # type: ignore[attr-defined]
        self.thread = threading.get_ident()
        self.threadName = threading.current_thread().name
        path = redact(path[:200]) if path else path
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


class _LineFormatter(RedactingFormatter):
    """Redacts every line, except an access line, whose one client-written field already is."""

    def format(self, record: logging.LogRecord) -> str:
        if type(record) is AccessRecord and not record.exc_info:
            return self.inner.format(record)
        return super().format(record)


def configure_logging(json_lines: bool, level: int = logging.INFO) -> None:
    """Route bastion's loggers to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    # Redacted last, over the whole line: a library's message can quote a URL with its password.
    handler.setFormatter(_LineFormatter(inner))
    handler.set_name("bastion")
    root = logging.getLogger("bastion")
    for existing in list(root.handlers):
        if existing.get_name() == "bastion":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
