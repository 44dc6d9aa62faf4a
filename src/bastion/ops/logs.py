"""Log output: one JSON object per line in production, readable lines in development.

Production logs are read by machines (Loki, Elasticsearch, CloudWatch), which
want one JSON object per line with stable keys. A developer at a terminal
wants a short line. Both come from the same records; only the formatter
changes. JSON also escapes every value, so nothing logged can forge a line.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from bastion.redact import RedactingFormatter

__all__ = ["JsonFormatter", "configure_logging"]

#: Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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


def configure_logging(json_lines: bool, level: int = logging.INFO) -> None:
    """Route bastion's loggers to stderr in the chosen format (idempotent)."""
    handler = logging.StreamHandler(sys.stderr)
    inner = (
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    # Redacted last, over the whole line: a library's message can quote a URL with its password.
    handler.setFormatter(RedactingFormatter(inner))
    handler.set_name("bastion")
    root = logging.getLogger("bastion")
    for existing in list(root.handlers):
        if existing.get_name() == "bastion":
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
