"""What a subcommand of ``bastion`` is: a name, its arguments and the function that runs it.

One module per command (``bastion.cli._demo``, ``bastion.cli._check`` ...), as
Django's ``management/commands/``; each defines one :class:`Command`. A
command module imports only the standard library at the top: what the
command needs (uvicorn, the database, procrastinate) it imports when it runs,
so ``bastion check`` does not pay for the worker, nor ``--help`` for anything.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.config import Settings


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command that takes no option of its own."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    #: Runs the command with the loaded settings; returns the exit status.
    run: Callable[[argparse.Namespace, Settings], int]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    #: The longer text ``bastion NAME --help`` shows (the help line if None).
    description: str | None = None


def instant(text: str) -> datetime:
    """``2026-01-31``, ``2026-01-31T12:00``, ``...Z`` or with an offset; naive means UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected an ISO 8601 time such as 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def positive(text: str) -> int:
    """A count for ``--limit`` or ``--concurrency``: 1 to 10,000."""
    value = int(text)
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("expected a number from 1 to 10000")
    return value
