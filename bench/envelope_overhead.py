"""What the hardening envelope costs over bare Starlette, in requests per second.

Two uvicorn processes run at once with identical flags: one serves the bare
app, the other the same app wrapped by ``bastion.hardening.envelope`` (see
``bench/apps.py``). wrk drives a trivial JSON GET and a same-origin JSON POST
(the unsafe request the CSRF check has to inspect) against each, in rounds that
alternate between the contenders, so that a noisy neighbour slows both alike
and the ratio stays meaningful even when the absolute figures wobble. Each
figure is the median over the rounds.

Before anything is timed, each contender is asked the questions the figures
depend on: a benchmark of an envelope that refuses the POST, or of a "bare"
app that secretly has the envelope, would measure the wrong thing.

    uv run python -m bench.envelope_overhead [--rounds 3] [--seconds 3] [--warmup 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from tests.support.servers import ROOT, free_port

from bastion.config import Settings
from bench.apps import APP_URL_VARIABLE

__all__ = ["Check", "Figures", "Report", "WrkRun", "main", "measure", "parse_wrk"]

CONTENDERS: Mapping[str, str] = {"bare": "bare_app", "envelope": "envelope_app"}
THREADS = 1
CONNECTIONS = 32
POST_BODY = '{"note": "bench"}'


@dataclass(frozen=True)
class Endpoint:
    label: str
    method: str
    path: str


JSON_GET = Endpoint("GET /json", "GET", "/json")
SUBMIT_POST = Endpoint("POST /submit", "POST", "/submit")
ENDPOINTS = (JSON_GET, SUBMIT_POST)


def same_origin_headers(origin: str) -> dict[str, str]:
    """What a browser sends on a same-origin fetch; shared by the check and by wrk."""
    return {
        "Content-Type": "application/json",
        "Origin": origin,
        "Sec-Fetch-Site": "same-origin",
    }


@dataclass(frozen=True)
class WrkRun:
    """One wrk run, reduced to the figures the report uses."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


@dataclass(frozen=True)
class Figures:
    """One contender on one endpoint: medians over the rounds."""

    contender: str
    endpoint: str
    rps: float
    p50_ms: float
    p99_ms: float
    rounds_rps: tuple[float, ...]
    socket_errors: int


@dataclass(frozen=True)
class Check:
    """One question asked of a contender before it is measured."""

    contender: str
    question: str
    expected: str
    got: str

    @property
    def ok(self) -> bool:
        return self.expected == self.got


@dataclass(frozen=True)
class Report:
    rounds: int
    seconds: int
    checks: tuple[Check, ...]
    figures: tuple[Figures, ...]

    def get(self, contender: str, endpoint: str) -> Figures:
        for item in self.figures:
            if item.contender == contender and item.endpoint == endpoint:
                return item
        raise KeyError((contender, endpoint))

    def ratio(self, endpoint: str) -> float:
        """envelope rps / bare rps: 1.0 means the envelope is free."""
        return self.get("envelope", endpoint).rps / self.get("bare", endpoint).rps

    @property
    def ratios(self) -> dict[str, float]:
        return {endpoint.label: self.ratio(endpoint.label) for endpoint in ENDPOINTS}


# --- wrk ----------------------------------------------------------------------

_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


def _percentile_ms(output: str, percent: int) -> float:
    match = re.search(rf"^\s*{percent}(?:\.0+)?%\s+([\d.]+)([a-z]+)\s*$", output, re.MULTILINE)
    if match is None or match.group(2) not in _TIME_UNITS_MS:
        raise ValueError(f"no {percent}% latency in wrk output (was --latency given?):\n{output}")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkRun:
    """Read wrk's human report; it has no machine format without a Lua ``done`` hook."""
    rps = _RPS.search(output)
    requests = _REQUESTS.search(output)
    if rps is None or requests is None:
        raise ValueError(f"no Requests/sec in wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    return WrkRun(
        requests=int(requests.group(1)),
        rps=float(rps.group(1)),
        p50_ms=_percentile_ms(output, 50),
        p99_ms=_percentile_ms(output, 99),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def _lua_string(value: str) -> str:
    """A JSON string literal of ASCII text is also a valid Lua string literal."""
    if not value.isascii():
        raise ValueError(f"non-ASCII text in a wrk script: {value!r}")
    return json.dumps(value)


def write_post_script(directory: Path, name: str, origin: str) -> Path:
    lines = [
        f"wrk.method = {_lua_string(SUBMIT_POST.method)}",
        f"wrk.body = {_lua_string(POST_BODY)}",
        *(
            f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}"
            for k, v in same_origin_headers(origin).items()
        ),
    ]
    path = directory / f"post-{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_wrk(wrk: str, url: str, seconds: int, script: Path | None) -> WrkRun:
    command = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    run = parse_wrk(done.stdout)
    if run.requests == 0:
        raise RuntimeError(f"wrk completed no request against {url}:\n{done.stdout}")
    if run.non_2xx:
        # A refused POST is far cheaper than a served one; counting it would flatter the envelope.
        raise RuntimeError(f"{run.non_2xx} non-2xx responses from {url} under load:\n{done.stdout}")
    return run


# --- servers --------------------------------------------------------------------


class Contender:
    """One uvicorn process serving one factory from ``bench.apps``."""

    def __init__(self, name: str, factory: str) -> None:
        self.name = name
        self.factory = factory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"bastion-bench-{name}-", suffix=".log", delete=False
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        """The shell's environment minus bastion's variables.

        A stray ALLOWED_HOSTS or APP_ENV in the developer's shell would
        otherwise change what the envelope does, and so what is measured.
        """
        env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
        env[APP_URL_VARIABLE] = self.url
        return env

    def start(self) -> Contender:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"bench.apps:{self.factory}",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=self._env(),
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + JSON_GET.path, timeout=0.5)
                return self
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not start:\n{self.output()}")

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


# --- checks -----------------------------------------------------------------------


def _answer(response: httpx.Response) -> str:
    try:
        body: object = response.json()
    except ValueError:
        body = response.text[:120]
    return f"{response.status_code} {body!r}"


def check(contender: Contender) -> list[Check]:
    """Ask the questions whose answers the figures rely on.

    Beyond the brief's three, the bare app must let an origin-less POST
    through and must not carry the envelope's headers: otherwise the two
    processes are not the contenders their names say.
    """
    name = contender.name
    wrapped = name == "envelope"
    ok = "200 {'ok': True}"
    checks: list[Check] = []
    with httpx.Client(base_url=contender.url, timeout=5.0) as client:
        got = client.get(JSON_GET.path)
        checks.append(Check(name, JSON_GET.label, ok, _answer(got)))
        nosniff = got.headers.get("x-content-type-options")
        checks.append(
            Check(
                name,
                "GET /json carries the envelope's security headers",
                str(wrapped),
                str(nosniff == "nosniff"),
            )
        )
        got = client.post(
            SUBMIT_POST.path, content=POST_BODY, headers=same_origin_headers(contender.url)
        )
        checks.append(Check(name, f"same-origin {SUBMIT_POST.label}", ok, _answer(got)))
        got = client.post(
            SUBMIT_POST.path, content=POST_BODY, headers={"Content-Type": "application/json"}
        )
        checks.append(
            Check(
                name,
                f"{SUBMIT_POST.label} without Origin, Sec-Fetch-Site or Referer",
                "403" if wrapped else "200",
                str(got.status_code),
            )
        )
    return checks


# --- the run ---------------------------------------------------------------------


def _figures(name: str, endpoint: str, runs: list[WrkRun]) -> Figures:
    return Figures(
        contender=name,
        endpoint=endpoint,
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        rounds_rps=tuple(r.rps for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
    )


@contextlib.contextmanager
def _servers() -> Iterator[list[Contender]]:
    """Both contenders up at once, so that rounds can alternate without restarts.

    They start one after the other: a port is only taken once its server
    listens, so picking the second port earlier could pick the first one again.
    """
    started: list[Contender] = []
    try:
        for name, factory in CONTENDERS.items():
            contender = Contender(name, factory)
            started.append(contender)
            contender.start()
        yield started
    finally:
        for contender in started:
            contender.stop()


def measure(rounds: int, seconds: int, warmup: int) -> Report:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    with _servers() as contenders, tempfile.TemporaryDirectory(prefix="bastion-wrk-") as tmp:
        checks = [item for contender in contenders for item in check(contender)]
        failed = [c for c in checks if not c.ok]
        if failed:
            raise RuntimeError(
                "contenders answered wrongly, nothing measured:\n"
                + "\n".join(
                    f"  {c.contender}: {c.question}: expected {c.expected}, got {c.got}"
                    for c in failed
                )
            )
        scripts = {c.name: write_post_script(Path(tmp), c.name, c.url) for c in contenders}

        def once(contender: Contender, endpoint: Endpoint, duration: int) -> WrkRun:
            script = scripts[contender.name] if endpoint is SUBMIT_POST else None
            return run_wrk(wrk, contender.url + endpoint.path, duration, script)

        if warmup > 0:
            for endpoint in ENDPOINTS:
                for contender in contenders:
                    once(contender, endpoint, warmup)
        runs: dict[tuple[str, str], list[WrkRun]] = {}
        for _ in range(rounds):
            for endpoint in ENDPOINTS:
                for contender in contenders:
                    key = (contender.name, endpoint.label)
                    runs.setdefault(key, []).append(once(contender, endpoint, seconds))
    figures = tuple(
        _figures(name, endpoint.label, runs[(name, endpoint.label)])
        for endpoint in ENDPOINTS
        for name in CONTENDERS
    )
    return Report(rounds=rounds, seconds=seconds, checks=tuple(checks), figures=figures)


def render(report: Report) -> str:
    lines = [
        f"uvicorn (1 worker, uvloop, httptools) | wrk -t{THREADS} -c{CONNECTIONS} | "
        f"{report.rounds} rounds x {report.seconds} s, medians",
        f"{len(report.checks)} checks passed before measuring",
        "",
        f"{'endpoint':<14}{'contender':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}  rounds req/s",
    ]
    for item in report.figures:
        rounds = " ".join(f"{r:.0f}" for r in item.rounds_rps)
        errors = f"  ({item.socket_errors} socket errors)" if item.socket_errors else ""
        lines.append(
            f"{item.endpoint:<14}{item.contender:<10}{item.rps:>10.0f}"
            f"{item.p50_ms:>9.2f}{item.p99_ms:>9.2f}  {rounds}{errors}"
        )
    lines.append("")
    for endpoint, ratio in report.ratios.items():
        lines.append(f"ratio envelope/bare req/s, {endpoint:<13}: {ratio:.3f}")
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text}")
    return value


def main(argv: list[str] | None = None) -> Report:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=_positive, default=3, help="rounds per contender")
    # wrk takes whole seconds only.
    parser.add_argument("--seconds", type=_positive, default=3, help="length of one wrk run")
    parser.add_argument(
        "--warmup", type=_not_negative, default=1, help="untimed seconds per run before round 1"
    )
    args = parser.parse_args(argv)
    report = measure(args.rounds, args.seconds, args.warmup)
    print(render(report))
    return report


if __name__ == "__main__":
    main()
