"""The ``bastion`` console script.

Each subcommand is a small function; configuration errors end the process
with one readable line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bastion.config import ConfigError, Settings, load_settings

__all__ = ["main"]


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    """Run the example app on the embedded default (SQLite; no cache unless VALKEY_URL)."""
    import uvicorn

    from bastion_example import create_app

    app = create_app(settings)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level="info",
        proxy_headers=False,  # bastion resolves forwarded headers itself, from TRUSTED_PROXIES
        server_header=False,
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bastion", description="Django's security and operations envelope for ASGI apps."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the example app")
    demo.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    demo.set_defaults(handler=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"bastion: {exc}", file=sys.stderr)
        return 2
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    return handler(args, settings)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
