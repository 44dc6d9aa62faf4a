"""``bastion check [--deploy]``: the deployment checklist (see :mod:`bastion.deploy._checks`).

Exit status 1 when a finding reaches ``--fail-level``, so CI and deploy
scripts can gate on it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING

from bastion.cli._command import Command

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.deploy import Finding


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--deploy", action="store_true", help="also run the production deployment checks"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--fail-level",
        choices=("error", "warning"),
        default="error",
        help="lowest level that makes the exit status non-zero (default: error)",
    )


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bastion.deploy import format_text, run_checks

    extra = [
        *_schema_findings(args, settings),
        *_heartbeat_findings(args, settings),
        *_second_factor_findings(args, settings),
    ]
    result = run_checks(settings, deploy=args.deploy, extra=extra)
    if args.json:
        print(json.dumps([finding.to_json() for finding in result.findings], indent=2))
    else:
        print(format_text(result, deploy=args.deploy))
    return 1 if result.failed(args.fail_level) else 0


def _schema_findings(args: argparse.Namespace, settings: Settings) -> list[Finding]:
    """E051 reads bastion's version table: only with --deploy, and skipped (said on
    stderr) when the database does not answer within its timeout."""
    if not args.deploy:
        return []
    from bastion.db import Database
    from bastion.deploy._checks import schema_state

    async def state() -> str | None:
        if _sqlite_file_missing(settings.DATABASE_URL):
            return "missing"  # without creating the file, as connecting would
        database = Database.from_settings(settings)
        try:
            return await database.schema()
        finally:
            await database.dispose()

    found = asyncio.run(state())
    if found is None:
        print("bastion check: bastion.E051 skipped (the database does not answer)", file=sys.stderr)
        return []
    return list(schema_state(settings, found))


def _sqlite_file_missing(database_url: str) -> bool:
    from pathlib import Path

    from bastion.db._url import to_async_url

    url = to_async_url(database_url)
    name = url.database or ""
    return (
        url.get_backend_name() == "sqlite"
        and name not in ("", ":memory:")
        and not (Path(name).expanduser().exists())
    )


def _heartbeat_findings(args: argparse.Namespace, settings: Settings) -> list[Finding]:
    """W060 needs the database: read the heartbeats only with --deploy, jobs on, and a database
    that answers within its timeout; otherwise the check is skipped, and says so on stderr."""
    if not (args.deploy and settings.JOBS_ENABLED):
        return []
    from bastion.db import Database
    from bastion.deploy._checks import worker_heartbeat
    from bastion.jobs import Jobs

    async def youngest() -> tuple[bool, float | None]:
        database = Database.from_settings(settings)
        jobs = Jobs(settings, database)
        try:
            if not await jobs.ready():
                return False, None
            ages = [worker.heartbeat_age for worker in await jobs.workers()]
            return True, min(ages) if ages else None
        except Exception:
            return False, None
        finally:
            await jobs.stop()
            await database.dispose()

    reachable, age = asyncio.run(youngest())
    if not reachable:
        print(
            "bastion check: bastion.W060 skipped (the job queue's database does not answer)",
            file=sys.stderr,
        )
        return []
    return list(worker_heartbeat(settings, age))


def _second_factor_findings(args: argparse.Namespace, settings: Settings) -> list[Finding]:
    """W080 reads the administrators and their second factors: only with --deploy, and
    skipped (said on stderr) when the database does not answer or has no accounts' tables."""
    if not args.deploy:
        return []
    from sqlalchemy import exists, select

    from bastion.db import Database
    from bastion.db._models import Passkey, TotpSecret, User
    from bastion.deploy._checks import admins_without_second_factor

    totp = exists().where(TotpSecret.user_id == User.id, TotpSecret.confirmed_at.is_not(None))
    passkey = exists().where(Passkey.user_id == User.id)
    query = (
        select(User.email)
        .where(User.is_admin, User.deactivated_at.is_(None), ~totp, ~passkey)
        .order_by(User.email)
    )

    async def emails() -> list[str] | None:
        if _sqlite_file_missing(settings.DATABASE_URL):
            return None
        database = Database.from_settings(settings)
        try:
            async with database.session() as db:
                return list((await db.scalars(query)).all())
        except Exception:
            return None
        finally:
            await database.dispose()

    found = asyncio.run(emails())
    if found is None:
        print(
            "bastion check: bastion.W080 skipped (the database does not answer, or is not "
            "migrated)",
            file=sys.stderr,
        )
        return []
    return list(admins_without_second_factor(settings, found))


COMMAND = Command(
    "check",
    "check the configuration; --deploy adds the production checklist",
    _run,
    _arguments,
    description="Without --deploy only checks that hold in every environment run; "
    "--deploy adds the production checklist (secret, https, hosts, proxies, ...). "
    "Exit status 1 when a finding reaches --fail-level, 2 when the configuration "
    "does not load. Silence IDs with SILENCED_CHECKS.",
)
