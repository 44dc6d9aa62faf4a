"""``bastion worker``: run background jobs until SIGTERM (see :mod:`bastion.jobs._worker`).

It needs ``JOBS_ENABLED`` (the queue is in PostgreSQL); without it jobs run
inline in the app and there is nothing for a worker to do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from bastion.cli._command import Command, positive

if TYPE_CHECKING:
    from bastion.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency", type=positive, default=1, help="jobs run at once (default 1)"
    )
    parser.add_argument("--queues", help="comma-separated queues to take jobs from (default: all)")
    parser.add_argument(
        "--grace",
        type=float,
        default=25.0,
        help="seconds a stop waits for running jobs before releasing them (default 25)",
    )


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bastion._plugins import load_task_modules
    from bastion.jobs._worker import run_worker
    from bastion.ops import configure_logging

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


COMMAND = Command(
    "worker",
    "run background jobs (JOBS_ENABLED=true); stops gracefully on SIGTERM",
    _run,
    _arguments,
)
