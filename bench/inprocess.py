"""Where the envelope's time goes: each layer called in-process, without a server or a socket.

wrk measures what a client sees, and the server's own work blurs the
envelope's; here the app is called with a ready-made scope, layer by layer:
``bare``, ``pass-through`` (a middleware that only wraps ``send``: the floor of
any that sees the response), ``envelope``, ``protect`` (no metrics),
``protect+metrics``, the same ``via proxy``, and ``+access log`` (production's
JSON line, to a file). Each round runs bare and then each layer; a layer's
figure is the bare median plus the median of its per-round differences, so a
slow moment of a shared machine hits both sides. ``parts`` times the
driver's pieces alone. It runs as ``python -m bench.inprocess`` (JSON out) on
the bastion its PYTHONPATH picks (``bench.layers``), using only public calls
(the stack builder, ``bastion.ops.Metrics``) so any revision runs it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import uvloop
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LOGGED = "protect+metrics+access log"
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
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "headers": [(b"host", b"127.0.0.1:8001"), *extra],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8001), "state": {},
    }  # fmt: skip


async def per_request(  # noqa: PLR0917 - the request's shape
    app: ASGIApp,
    method: str,
    path: str,
    count: int,
    proxied: bool = False,
    finish: Callable[[], object] | None = None,
) -> float:
    """µs per request over ``count`` requests; ``finish`` runs before the clock stops."""
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
    if finish is not None:
        finish()
    elapsed = (time.perf_counter() - start) / count
    if set(statuses) != {200}:
        raise RuntimeError(f"{method} {path} answered {sorted(set(statuses))}, expected 200")
    return elapsed * 1e6


def _apps() -> Mapping[str, ASGIApp]:
    os.environ["BENCH_APP_URL"] = _URL
    from bastion.ops import Metrics
    from bench.apps import bare_app, bench_settings, protect

    settings = bench_settings()
    apps: dict[str, ASGIApp] = {"bare": bare_app(), "pass-through": _pass_through(bare_app())}
    with contextlib.suppress(ImportError):
        from bastion.hardening import envelope

        if callable(envelope):  # a revision where it names the module does not have it
            apps["envelope"] = envelope(bare_app(), settings)
    apps["protect"] = protect(bare_app(), settings)
    for name in ("protect+metrics", "protect+metrics via proxy"):
        apps[name] = protect(bare_app(), settings, metrics=Metrics())
    with contextlib.suppress(ImportError):
        from bastion.ops import configure_logging  # noqa: F401 - the layer needs it

        apps[_LOGGED] = protect(bare_app(), settings, metrics=Metrics())
    return apps


def _pass_through(app: ASGIApp) -> ASGIApp:
    """The least a middleware that sees the response can do: wrap ``send`` and pass it on."""

    async def layer(scope: Scope, receive: Receive, send: Send) -> None:
        async def wrapped(message: Message) -> None:
            await send(message)

        await app(scope, receive, wrapped)

    return layer


@contextlib.contextmanager
def _access_log(stream: IO[str]) -> Iterator[None]:
    """Production's logging (JSON lines at INFO) into ``stream``, for one layer's run only."""
    from bastion.ops import configure_logging

    configure_logging(json_lines=True)
    root = logging.getLogger("bastion")
    handler = next(h for h in root.handlers if h.get_name() == "bastion")
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    try:
        yield
    finally:
        handler.flush()  # the lines it keeps for the end of the loop's turn
        root.removeHandler(handler)
        root.setLevel(logging.WARNING)


async def _layer(  # noqa: PLR0917 - the request's shape, plus where the log goes
    name: str, app: ASGIApp, method: str, path: str, count: int, log: IO[str]
) -> float:
    if name != _LOGGED:
        return await per_request(app, method, path, count, "proxy" in name)
    with _access_log(log):
        # The lines noted during the run are logged at the end of the loop's turn, which
        # this loop of awaits never reaches: log them inside the timed run.
        return await per_request(app, method, path, count, finish=_drain_access_lines())


def _drain_access_lines() -> Callable[[], object] | None:
    try:
        from bastion.ops._logs import access_lines
    except ImportError:
        try:
            from bastion.ops.logs import access_lines  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:  # an older bastion logs each line at once
            return None
    drain: Callable[[], object] = access_lines.drain
    return drain


async def measure(rounds: int, count: int) -> dict[str, dict[str, float]]:
    """``{"GET /json": {"bare": us, ...}, "POST /submit": {...}}``, paired over ``rounds``."""
    apps = _apps()
    logging.getLogger("bastion").setLevel(logging.WARNING)  # the access log off, but in one layer
    result: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryFile("w") as log:
        for method, path in (("GET", "/json"), ("POST", "/submit")):
            for name, app in apps.items():
                await _layer(name, app, method, path, count, log)  # warm up
            bare: list[float] = []
            over: dict[str, list[float]] = {name: [] for name in apps if name != "bare"}
            for _ in range(rounds):
                base = await per_request(apps["bare"], method, path, count)
                bare.append(base)
                for name, differences in over.items():
                    spent = await _layer(name, apps[name], method, path, count, log)
                    differences.append(spent - base)
                log.seek(0)
                log.truncate()
            middle = statistics.median(bare)
            figures = {"bare": middle}
            figures.update({n: middle + statistics.median(v) for n, v in over.items()})
            result[f"{method} {path}"] = figures
    parts = _parts()
    if parts:
        result["parts"] = parts
    return result


def _parts() -> dict[str, float]:
    """µs per call of each piece of ``protect()``'s driver (``bastion._driver``), best of 5.

    Only a revision with the driver has these pieces; any other gives none.
    """
    try:
        return _driver_parts()
    except (ImportError, AttributeError, AssertionError):
        return {}


def _driver_parts() -> dict[str, float]:
    from bastion._driver import Driver, add_missing
    from bastion._stack import build_stack as protect
    from bastion.ops import Metrics
    from bench.apps import bare_app, bench_settings

    stack = protect(bare_app(), bench_settings(), metrics=Metrics())
    assert isinstance(stack, Driver)
    assert stack.observer is not None
    assert stack.envelope is not None
    get, post = _scope("GET", "/json", []), _scope("POST", "/submit", _POST_HEADERS)
    headers = [(b"content-length", b"11"), (b"content-type", b"application/json")]
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    stamp = (b"x-request-id", b"0" * 32)
    added, names = stack.envelope.added_headers(False), stack.header_names
    observer, screen = stack.observer, stack.envelope.screen
    pieces: dict[str, Callable[[], object]] = {
        "observer.begin": lambda: observer.begin(get),
        "envelope.screen, GET": lambda: screen(get),
        "envelope.screen, POST": lambda: screen(post),
        "add_missing": lambda: {**start, "headers": add_missing(headers, added, names, stamp)},
        "observer.end": lambda: observer.end(get, 200, 0.001, "x"),
    }
    return {
        name: min(timeit.repeat(piece, number=20_000, repeat=5)) / 20_000 * 1e6
        for name, piece in pieces.items()
    }


async def profile(requests: int, proxied: bool) -> Any:
    """``--profile``: pyinstrument over protect+metrics, by function (a ``Profiler``)."""
    from pyinstrument import Profiler

    app = _apps()["protect+metrics"]
    await per_request(app, "GET", "/json", 500, proxied)  # warm the caches first
    with Profiler(interval=0.0001, async_mode="disabled") as profiler:
        await per_request(app, "GET", "/json", requests // 2, proxied)
        await per_request(app, "POST", "/submit", requests // 2, proxied)
    return profiler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--profile", type=int, metavar="REQUESTS", help="profile instead")
    parser.add_argument("--proxied", action="store_true", help="--profile relayed requests")
    args = parser.parse_args(argv)
    if args.profile:
        profiler = uvloop.run(profile(args.profile, args.proxied))
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        return
    print(json.dumps(uvloop.run(measure(args.rounds, args.count))))


if __name__ == "__main__":
    main()
