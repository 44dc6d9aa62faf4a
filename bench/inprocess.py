"""Where the envelope's time goes: each layer called in-process, without a server or a socket.

wrk measures what a client sees, but the server's own work (HTTP parsing,
the event loop, the socket) dwarfs and blurs the envelope's. Here the same
ASGI app is called directly with a ready-made scope, layer by layer:

- ``bare``: the Starlette app alone
- ``envelope``: + the envelope (proxy, hosts, CSRF, security headers)
- ``protect``: + the request observer (request id, access log), no metrics
- ``protect+metrics``: the full stack as ``protect(app, settings, metrics=Metrics())``
- ``protect+metrics via proxy``: the same, for a request relayed by a trusted
  proxy (``X-Forwarded-For``/``-Proto`` from 127.0.0.1), as behind Caddy

Each figure is the median over interleaved rounds of the time per request,
in microseconds. It runs in a fresh process (``python -m bench.inprocess``
prints JSON), so that the harness can run it against an older bastion too, by
putting that one's ``src`` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Mapping

import uvloop
from starlette.types import ASGIApp, Message, Scope

__all__ = ["LAYERS", "measure", "run"]

LAYERS = ("bare", "envelope", "protect", "protect+metrics", "protect+metrics via proxy")
_URL = "http://127.0.0.1:8001"
_BODY = b'{"note": "bench"}'
_POST_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"origin", _URL.encode()),
    (b"sec-fetch-site", b"same-origin"),
]
_PROXY_HEADERS = [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")]


def _scope(method: str, path: str, extra: list[tuple[bytes, bytes]]) -> Scope:
    """What uvicorn hands an app for one request from wrk."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8001"), *extra],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8001),
        "state": {},
    }


async def _per_request(
    app: ASGIApp, method: str, path: str, count: int, proxied: bool = False
) -> float:
    extra = _POST_HEADERS if method == "POST" else []
    if proxied:
        # Relayed https: the request's own origin is https, so is a browser's Origin.
        extra = [(k, b"https://127.0.0.1:8001" if k == b"origin" else v) for k, v in extra]
        extra += _PROXY_HEADERS
    request: Message = {"type": "http.request", "body": _BODY, "more_body": False}
    statuses: list[int] = []

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.perf_counter()
    for _ in range(count):
        await app(_scope(method, path, extra), receive, send)
    elapsed = (time.perf_counter() - start) / count
    if set(statuses) != {200}:
        raise RuntimeError(f"{method} {path} answered {sorted(set(statuses))}, expected 200")
    return elapsed * 1e6


def _apps() -> Mapping[str, ASGIApp]:
    os.environ["BENCH_APP_URL"] = _URL
    from bastion.hardening import envelope
    from bastion.ops.metrics import Metrics
    from bastion.stack import protect
    from bench.apps import bare_app, bench_settings

    settings = bench_settings()
    return {
        "bare": bare_app(),
        "envelope": envelope(bare_app(), settings),
        "protect": protect(bare_app(), settings),
        "protect+metrics": protect(bare_app(), settings, metrics=Metrics()),
        "protect+metrics via proxy": protect(bare_app(), settings, metrics=Metrics()),
    }


async def measure(rounds: int, count: int) -> dict[str, dict[str, float]]:
    """``{"GET /json": {"bare": us, ...}, "POST /submit": {...}}``, medians over ``rounds``."""
    apps = _apps()
    result: dict[str, dict[str, float]] = {}
    for method, path in (("GET", "/json"), ("POST", "/submit")):
        for name, app in apps.items():
            await _per_request(app, method, path, count, "proxy" in name)  # warm up
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(rounds):
            for name, app in apps.items():
                samples[name].append(await _per_request(app, method, path, count, "proxy" in name))
        result[f"{method} {path}"] = {n: statistics.median(v) for n, v in samples.items()}
    return result


def run(rounds: int, count: int) -> dict[str, dict[str, float]]:
    return uvloop.run(measure(rounds, count))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rounds, args.count)))


if __name__ == "__main__":
    main()
