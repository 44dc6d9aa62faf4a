"""``bastion demo``: run an app on the embedded default (SQLite; no cache unless VALKEY_URL)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

from bastion.cli._command import Command

if TYPE_CHECKING:
    from bastion.config import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--app", help="module:factory to run instead (factory(settings) returns an ASGI app)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    """The app is the one named by ``--app``, else the one registered as ``demo`` in the
    ``bastion.apps`` entry points (the example app, in bastion's own checkout): the
    library itself names no app."""
    import uvicorn

    from bastion._plugins import app_target, load_app_factory
    from bastion.db import migrate

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


COMMAND = Command("demo", "run the example app (migrates first in development)", _run, _arguments)
