"""``bastion audit``: recent audit-log rows, newest first, or (``--jsonl``) the whole export."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from bastion.cli._command import Command, instant, positive

if TYPE_CHECKING:
    from bastion.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--limit", type=positive, default=50, help="rows to print (default 50)")
    parser.add_argument("--action", help="only this action, e.g. auth.sign_in.failed")
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="export every matching row, oldest first, one JSON object per line (no --limit)",
    )
    parser.add_argument(
        "--since", type=instant, help="with --jsonl: rows at or after T (ISO 8601; naive is UTC)"
    )
    parser.add_argument("--until", type=instant, help="with --jsonl: rows before T")


def _export(args: argparse.Namespace, settings: Settings) -> int:
    """Every matching row, oldest first, one JSON object per line, streamed: no row cap,
    and memory bounded by a batch however large the log (a SIEM's import format)."""
    from bastion.audit import stream, to_json
    from bastion.db import Database

    async def run() -> int:
        database = Database.from_settings(settings)
        written = 0
        try:
            async with database.session() as db:
                out = sys.stdout
                async for row in stream(db, since=args.since, until=args.until, action=args.action):
                    out.write(json.dumps(to_json(row), ensure_ascii=False) + "\n")
                    written += 1
                out.flush()
        finally:
            await database.dispose()
        return written

    asyncio.run(run())
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bastion.audit import recent, to_json
    from bastion.db import Database

    if args.jsonl:
        return _export(args, settings)
    if args.since is not None or args.until is not None:
        print("bastion: --since and --until go with --jsonl (the export)", file=sys.stderr)
        return 2

    async def fetch() -> list[dict[str, object]]:
        database = Database.from_settings(settings)
        try:
            async with database.session() as db:
                rows = await recent(db, limit=args.limit, action=args.action)
                return [to_json(row) for row in rows]
        finally:
            await database.dispose()

    rows = asyncio.run(fetch())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        # repr() escapes control characters, so a crafted email cannot forge a line.
        print(
            f"{row['at']}  {row['action']:<28} {row['outcome']:<8} "
            f"subject={row['subject']!r} ip={row['client_ip'] or '-'} "
            f"details={json.dumps(row['details'])}"
        )
    return 0


COMMAND = Command("audit", "print recent audit-log rows, newest first", _run, _arguments)
