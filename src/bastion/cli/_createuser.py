"""``bastion createuser``: an account (an administrator with ``--admin``), password from a
prompt in a terminal or one line on stdin in a script."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import TYPE_CHECKING

from bastion.cli._command import Command

if TYPE_CHECKING:
    from bastion.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True)
    parser.add_argument("--admin", action="store_true", help="make the user an administrator")


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise ValueError("the passwords do not match")
        return first
    line = sys.stdin.readline()
    if not line.strip("\r\n"):
        # An empty pipe (or an empty first line) is a scripting mistake, not a short password.
        raise ValueError(
            "no password arrived on stdin; pipe one line in, or run in a terminal for a prompt"
        )
    return line.rstrip("\r\n")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bastion._runtime import Bastion
    from bastion.auth import AuthService, EmailTaken, InvalidEmail, InvalidPassword

    try:
        password = _read_password()
    except ValueError as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return 1

    async def create() -> str:
        bastion = Bastion(settings)
        try:
            service = AuthService.from_settings(settings, bastion.database, bastion.guard)
            user = await service.create_user(args.email, password, is_admin=args.admin)
            return user.email
        finally:
            await bastion.shutdown()

    try:
        email = asyncio.run(create())
    except (InvalidEmail, InvalidPassword, EmailTaken) as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return 1
    print(f"bastion: created {'admin ' if args.admin else ''}user {email}")
    return 0


COMMAND = Command(
    "createuser", "create an account (password from prompt or stdin)", _run, _arguments
)
