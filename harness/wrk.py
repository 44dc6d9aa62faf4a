"""wrk, the one load generator: Lua scripts for every request shape, and a machine-readable result.

Every run gets a script, even a plain GET, so that every run reports through
the same ``done`` hook: one ``BENCH_JSON {...}`` line with the request count,
errors and latency percentiles straight from wrk's own histogram. Parsing
wrk's human report instead would lose p99.9 and max precision.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CONNECTIONS",
    "THREADS",
    "WrkRun",
    "find_wrk",
    "lua_string",
    "parse_done",
    "run_wrk",
    "signin_script",
    "static_script",
]

THREADS = 1
CONNECTIONS = 32
#: wrk's default (2 s) would count a slow Django request as a socket timeout.
TIMEOUT_SECONDS = 10

_DONE_HOOK = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"connect":%.0f,"read":%.0f,' ..
    '"write":%.0f,"timeout":%.0f,"status":%.0f,"p50_us":%.0f,"p90_us":%.0f,' ..
    '"p99_us":%.0f,"p999_us":%.0f,"max_us":%.0f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


@dataclass(frozen=True)
class WrkRun:
    """One wrk run, reduced to the figures the report uses (latencies in ms)."""

    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    return wrk


def lua_string(value: str) -> str:
    """A JSON string literal of ASCII text is also a valid Lua string literal."""
    if not value.isascii():
        raise ValueError(f"non-ASCII text in a wrk script: {value!r}")
    return json.dumps(value)


def static_script(method: str, headers: Mapping[str, str], body: str | None = None) -> str:
    """The same request on every call: wrk pre-builds it once, the cheapest way to drive load."""
    lines = [f"wrk.method = {lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _DONE_HOOK


def signin_script(path: str, headers: Mapping[str, str], identities: int) -> str:
    """A sign-in attempt from one of ``identities`` client IPs for one of as many accounts.

    The IPs are in 198.18.0.0/15 (RFC 2544, for benchmarks); uvicorn takes
    them from ``X-Forwarded-For`` because wrk connects from loopback, which
    uvicorn trusts by default. Each wrk thread seeds its own generator.
    """
    fixed = "\n".join(f"  h[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items())
    return f"""
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
init = function(args)
  math.randomseed(os.time() + (seed or 0) * 7919)
end
request = function()
  local ip = math.random(0, {identities - 1})
  local account = math.random(0, {identities - 1})
  local h = {{}}
{fixed}
  h["X-Forwarded-For"] = "198.18." .. math.floor(ip / 256) .. "." .. (ip % 256)
  local body = '{{"email":"user' .. account .. '@example.com","password":"correct horse"}}'
  return wrk.format("POST", {lua_string(path)}, h, body)
end
{_DONE_HOOK}"""


def parse_done(output: str) -> WrkRun:
    """Read the ``done`` hook's line; anything else in wrk's output is ignored."""
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line.removeprefix("BENCH_JSON "))
            return WrkRun(
                requests=int(data["requests"]),
                seconds=data["duration_us"] / 1e6,
                p50_ms=data["p50_us"] / 1e3,
                p90_ms=data["p90_us"] / 1e3,
                p99_ms=data["p99_us"] / 1e3,
                p999_ms=data["p999_us"] / 1e3,
                max_ms=data["max_us"] / 1e3,
                non_2xx=int(data["status"]),
                socket_errors=int(data["connect"] + data["read"] + data["write"] + data["timeout"]),
            )
    raise ValueError(f"no BENCH_JSON line in wrk output:\n{output}")


def run_wrk(url: str, seconds: int, script: Path, connections: int = CONNECTIONS) -> WrkRun:
    """One run of ``wrk -t1 -c{connections} -d{seconds}s`` with ``script``; raises if wrk failed."""
    command = [
        find_wrk(),
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={TIMEOUT_SECONDS}s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(  # noqa: S603 - our own interpreter and binaries
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    run = parse_done(done.stdout)
    if run.requests == 0:
        raise RuntimeError(f"wrk completed no request against {url}:\n{done.stdout}")
    return run
