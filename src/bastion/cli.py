"""The ``bastion`` console script.

Each subcommand is a small function; configuration errors end the process
with one readable line and exit status 2, never a traceback. Dependency
failures (database down) end with one line and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bastion.config import ConfigError, Settings, load_settings
from bastion.redact import redact

if TYPE_CHECKING:
    from bastion.deploy import Finding

__all__ = ["main"]


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run an app on the embedded default (SQLite; no cache unless VALKEY_URL).

    The app is the one named by ``--app``, else the one registered as
    ``demo`` in the ``bastion.apps`` entry points (the example app, in
    bastion's own checkout): the library itself names no app.
    """
    import uvicorn

    from bastion.db import migrate
    from bastion.plugins import app_target, load_app_factory

    target = args.app or app_target("demo")
    if target is None:
        print("bastion: no app to run; pass --app module:factory", file=sys.stderr)
        return 2
    try:
        factory = load_app_factory(target)
    except ValueError as exc:
        print(f"bastion: --app: {exc}", file=sys.stderr)
        return 2
    if not settings.is_production:
        asyncio.run(migrate(settings.DATABASE_URL))
    app = factory(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        proxy_headers=False,  # bastion resolves forwarded headers itself, from TRUSTED_PROXIES
        server_header=False,
        access_log=False,  # bastion's request observer logs each request, with its id
    )
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bastion.db import migrate

    asyncio.run(migrate(settings.DATABASE_URL))
    print("bastion: database is at the latest migration")
    return 0


def _read_password(args: argparse.Namespace) -> str:
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


def _createuser(args: argparse.Namespace, settings: Settings) -> int:
    from bastion.auth import AuthService, EmailTaken, InvalidEmail, InvalidPassword
    from bastion.runtime import Bastion

    try:
        password = _read_password(args)
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


def _audit(args: argparse.Namespace, settings: Settings) -> int:
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


def _check(args: argparse.Namespace, settings: Settings) -> int:
    """Report findings; exit 1 when one reaches --fail-level, so CI and deploy scripts can gate."""
    from bastion.deploy import format_text, run_checks

    result = run_checks(settings, deploy=args.deploy, extra=_heartbeat_findings(args, settings))
    if args.json:
        print(json.dumps([finding.to_json() for finding in result.findings], indent=2))
    else:
        print(format_text(result, deploy=args.deploy))
    return 1 if result.failed(args.fail_level) else 0


def _heartbeat_findings(args: argparse.Namespace, settings: Settings) -> list[Finding]:
    """W060 needs the database: read the heartbeats only with --deploy, jobs on, and a database
    that answers within its timeout; otherwise the check is skipped, and says so on stderr."""
    if not (args.deploy and settings.JOBS_ENABLED):
        return []
    from bastion.db import Database
    from bastion.deploy.checks import worker_heartbeat
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


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run background jobs until SIGTERM; needs JOBS_ENABLED (the queue is in PostgreSQL)."""
    from bastion.jobs.worker import run_worker
    from bastion.ops import configure_logging
    from bastion.plugins import load_task_modules

    if not settings.JOBS_ENABLED:
        print(
            "bastion: worker needs JOBS_ENABLED=true (without it, jobs run inline in the app)",
            file=sys.stderr,
        )
        return 2
    configure_logging(json_lines=settings.is_production)
    try:
        load_task_modules()
    except ImportError as exc:
        print(f"bastion: worker: cannot import a task module ({exc.name})", file=sys.stderr)
        return 2
    queues = [q.strip() for q in args.queues.split(",") if q.strip()] if args.queues else None
    return asyncio.run(
        run_worker(settings, concurrency=args.concurrency, queues=queues, grace=args.grace)
    )


def _bundle(args: argparse.Namespace, settings: Settings) -> int:
    """Build the offline release; progress on stderr, the result on stdout."""
    from pathlib import Path

    from bastion.deploy import BundleError, build_bundle, find_project

    def progress(line: str) -> None:
        print(f"bastion bundle: {line}", file=sys.stderr, flush=True)

    try:
        project = Path(args.project) if args.project else find_project()
        output = Path(args.output) if args.output else None
        bundle = build_bundle(project, output, python=args.python, log=progress)
    except BundleError as exc:
        print(f"bastion: bundle failed: {exc}", file=sys.stderr)
        return 1
    print(
        f"{bundle.path}\n  {len(bundle.wheels)} wheels for Python {bundle.python} "
        f"({bundle.platform}), {bundle.size / 1e6:.1f} MB\n  sha256 {bundle.sha256}"
    )
    return 0


def _instant(text: str) -> datetime:
    """``2026-01-31``, ``2026-01-31T12:00``, ``...Z`` or with an offset; naive means UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            "expected an ISO 8601 time such as 2026-01-31 or 2026-01-31T12:00:00Z"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _positive(text: str) -> int:
    value = int(text)
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError("expected a number from 1 to 10000")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bastion", description="Django's security and operations envelope for ASGI apps."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the example app (migrates first in development)")
    demo.add_argument(
        "--app", help="module:factory to run instead (factory(settings) returns an ASGI app)"
    )
    demo.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    demo.set_defaults(handler=_demo)

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.set_defaults(handler=_migrate)

    create = sub.add_parser("createuser", help="create an account (password from prompt or stdin)")
    create.add_argument("--email", required=True)
    create.add_argument("--admin", action="store_true", help="make the user an administrator")
    create.set_defaults(handler=_createuser)

    audit = sub.add_parser("audit", help="print recent audit-log rows, newest first")
    audit.add_argument("--json", action="store_true", help="machine-readable output")
    audit.add_argument("--limit", type=_positive, default=50, help="rows to print (default 50)")
    audit.add_argument("--action", help="only this action, e.g. auth.sign_in.failed")
    audit.add_argument(
        "--jsonl",
        action="store_true",
        help="export every matching row, oldest first, one JSON object per line (no --limit)",
    )
    audit.add_argument(
        "--since", type=_instant, help="with --jsonl: rows at or after T (ISO 8601; naive is UTC)"
    )
    audit.add_argument("--until", type=_instant, help="with --jsonl: rows before T")
    audit.set_defaults(handler=_audit)

    check = sub.add_parser(
        "check",
        help="check the configuration; --deploy adds the production checklist",
        description="Without --deploy only checks that hold in every environment run; "
        "--deploy adds the production checklist (secret, https, hosts, proxies, ...). "
        "Exit status 1 when a finding reaches --fail-level, 2 when the configuration "
        "does not load. Silence IDs with SILENCED_CHECKS.",
    )
    check.add_argument(
        "--deploy", action="store_true", help="also run the production deployment checks"
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.add_argument(
        "--fail-level",
        choices=("error", "warning"),
        default="error",
        help="lowest level that makes the exit status non-zero (default: error)",
    )
    check.set_defaults(handler=_check)

    worker = sub.add_parser(
        "worker",
        help="run background jobs (JOBS_ENABLED=true); stops gracefully on SIGTERM",
    )
    worker.add_argument(
        "--concurrency", type=_positive, default=1, help="jobs run at once (default 1)"
    )
    worker.add_argument("--queues", help="comma-separated queues to take jobs from (default: all)")
    worker.add_argument(
        "--grace",
        type=float,
        default=25.0,
        help="seconds a stop waits for running jobs before releasing them (default 25)",
    )
    worker.set_defaults(handler=_worker)

    bundle = sub.add_parser(
        "bundle",
        help="build one .tar that installs the app offline (needs the network to build)",
    )
    bundle.add_argument(
        "--output", help="where to write the .tar (default: dist/bastion-<version>.tar)"
    )
    bundle.add_argument(
        "--project", help="the bastion source tree (default: found from the current directory)"
    )
    bundle.add_argument(
        "--python",
        help="the Python the bundle targets (default: this one); the host needs its major.minor",
    )
    bundle.set_defaults(handler=_bundle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return 2
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    from bastion.db import DATABASE_ERRORS

    try:
        return handler(args, settings)
    except BrokenPipeError:
        # The reader left (`bastion audit | head -1`): nothing went wrong, so say nothing.
        _detach_stdout()
        return 0
    except Exception as exc:
        if isinstance(exc, DATABASE_ERRORS) and _from_database(exc):
            print(f"bastion: {_describe_database_error(exc)}", file=sys.stderr)
            return 1
        # A bug's traceback still helps, but a library's message in it may quote a URL
        # with its password: print it redacted, never raw.
        print(redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1


#: Code whose OSError or TimeoutError means "the database is unavailable".
_DATABASE_MODULES = (
    "sqlalchemy",
    "asyncpg",
    "aiosqlite",
    "sqlite3",
    "psycopg",
    "psycopg_pool",
    "procrastinate",
    "alembic",
    "bastion.db",
)


def _from_database(exc: BaseException) -> bool:
    """Whether a database call failed, judged by where it failed rather than by its type:
    an ``OSError`` is just as likely a closed pipe or a full disk."""
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, DBAPIError | PoolTimeout):
        return True
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith(_DATABASE_MODULES):
            return True
        tb = tb.tb_next
    return False


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _describe_database_error(exc: BaseException) -> str:
    """Tell "not migrated yet" apart from "not reachable": the fixes differ."""
    text = str(exc).lower()
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return "the database has no bastion tables yet; run `bastion migrate` first"
    return f"database unavailable ({type(exc).__name__})"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
