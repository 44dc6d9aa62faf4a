"""Profile bastion's per-request stack with pyinstrument, in-process, without a server.

uv run python -m bench.profile [--requests 20000] [--proxied] [--html out.html]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvloop
from pyinstrument import Profiler

from bench.inprocess import per_request


async def _drive(requests: int, proxied: bool) -> Profiler:
    os.environ["BENCH_APP_URL"] = "http://127.0.0.1:8001"
    from bastion.ops import Metrics
    from bench.apps import bare_app, bench_settings, protect

    app = protect(bare_app(), bench_settings(), metrics=Metrics())
    await per_request(app, "GET", "/json", 500, proxied)  # warm the caches first
    profiler = Profiler(interval=0.0001, async_mode="disabled")
    profiler.start()
    await per_request(app, "GET", "/json", requests // 2, proxied)
    await per_request(app, "POST", "/submit", requests // 2, proxied)
    profiler.stop()
    return profiler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument(
        "--proxied", action="store_true", help="requests relayed by a trusted proxy (XFF/XFP)"
    )
    parser.add_argument("--html", type=Path, default=None, help="write pyinstrument's HTML here")
    args = parser.parse_args(argv)
    profiler = uvloop.run(_drive(args.requests, args.proxied))
    if args.html is not None:
        args.html.write_text(profiler.output_html())
    print(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    main()
