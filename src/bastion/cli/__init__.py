"""The ``bastion`` console script: one module per command, as Django's ``management/commands/``.

``demo``, ``migrate``, ``createuser``, ``audit``, ``check``, ``worker`` and
``bundle`` each live in a module of this package that defines one
:class:`~bastion.cli._command.Command` and imports what it needs only when it
runs. Configuration errors end the process with one readable line and exit
status 2, never a traceback; dependency failures (database down) end with one
line and exit status 1 (:mod:`bastion.cli._errors`).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence

from bastion._redact import redact
from bastion.cli import _audit, _bundle, _check, _createuser, _demo, _migrate, _worker
from bastion.cli._command import Command
from bastion.cli._errors import describe_database_error, from_database
from bastion.config import ConfigError, Settings, load_settings

__all__ = [
    "main",
]

#: The subcommands, in the order ``bastion --help`` lists them.
COMMANDS: tuple[Command, ...] = (
    _demo.COMMAND,
    _migrate.COMMAND,
    _createuser.COMMAND,
    _audit.COMMAND,
    _check.COMMAND,
    _worker.COMMAND,
    _bundle.COMMAND,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bastion", description="Django's security and operations envelope for ASGI apps."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        parser_of = sub.add_parser(command.name, help=command.help, description=command.description)
        command.arguments(parser_of)
        parser_of.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return 2
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    from bastion.db import SchemaError  # the database, once a command runs

    try:
        return handler(args, settings)
    except BrokenPipeError:
        # The reader left (`bastion audit | head -1`): nothing went wrong, so say nothing.
        _detach_stdout()
        return 0
    except Exception as exc:
        if isinstance(exc, SchemaError) or from_database(exc):
            print(f"bastion: {describe_database_error(exc)}", file=sys.stderr)
            return 1
        # A bug's traceback still helps, but a library's message in it may quote a URL
        # with its password: print it redacted, never raw.
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
