"""Scenario 1, plain requests: ``GET /json`` and a same-origin ``POST /submit`` under wrk.

Every contender of ``bench.apps`` (and, with a baseline, ``protect()`` on the
older bastion), each first asked what its figures rely on.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from harness.wrk import static_script

from bench.layers import python_path
from bench.results import OK_BODY, Cell, Check, Context, answer, measure, paired, say, summary
from bench.servers import AppProcess, Server, running

POST_BODY = '{"note": "bench"}'
ENDPOINTS = ("GET /json", "POST /submit")
#: Requests granian lets into the app at once in ``envelope-granian-bp`` (default: 1024).
GRANIAN_BACKPRESSURE = 8
#: key: (factory in bench.apps, server, protection). Protection: "none", "headers" (the
#: envelope's headers, no logic), "envelope" (Origin / Sec-Fetch-Site), "django", "litestar".
CONTENDERS: dict[str, tuple[str, Server, str]] = {
    "bare": ("bare_app", "uvicorn", "none"),
    "headers": ("headers_app", "uvicorn", "headers"),
    "envelope": ("protected_app", "uvicorn", "envelope"),
    "envelope-nometrics": ("protected_nometrics_app", "uvicorn", "envelope"),
    "envelope-log": ("protected_logging_app", "uvicorn", "envelope"),
    "fastapi": ("fastapi_app", "uvicorn", "envelope"),
    "django": ("django_app", "uvicorn", "django"),
    "litestar": ("litestar_app", "uvicorn", "litestar"),
    "bare-granian": ("bare_app", "granian", "none"),
    "envelope-granian": ("protected_app", "granian", "envelope"),
    "envelope-granian-bp": ("protected_app", "granian", "envelope"),
}
KEYS = tuple(CONTENDERS)
#: What a smoke run serves: one contender per server kind.
SMOKE = ("envelope", "envelope-granian")
#: Ratios the report reads besides every contender's against bare and the envelope's against it.
EXTRA_RATIOS = (
    ("envelope-granian", "bare-granian"),
    ("envelope-granian", "envelope"),
    ("envelope-granian-bp", "envelope"),
    ("envelope-before", "bare"),
    ("envelope-log", "envelope"),
)


@dataclass
class Contender:
    """A server process plus what the harness must know to talk to it like a browser."""

    key: str
    app: AppProcess
    protection: str
    #: Cookie (and token header for unsafe requests), filled in by ``bootstrap``.
    session: dict[str, str] = field(default_factory=dict)
    token: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.app.url

    def bootstrap(self) -> None:
        """Get a CSRF token once, as a browser does: Django's ``GET /csrf`` (``get_token``), or the
        cookie Litestar sets on any GET. bastion needs none: it reads Origin and Sec-Fetch-Site."""
        if self.protection in ("django", "litestar"):
            path = "/csrf" if self.protection == "django" else "/json"
            response = httpx.get(self.url + path, timeout=5)
            cookie = response.cookies["csrftoken"]
            self.session = {"Cookie": f"csrftoken={cookie}"}
            token = response.json()["token"] if self.protection == "django" else cookie
            name = "X-CSRFToken" if self.protection == "django" else "x-csrftoken"
            self.token = {name: str(token)}

    def post_headers(self) -> dict[str, str]:
        """A same-origin fetch() POST of JSON, with whatever token the contender demands."""
        return {
            "Content-Type": "application/json",
            "Origin": self.url,
            "Sec-Fetch-Site": "same-origin",
            **self.session,
            **self.token,
        }


def contenders(context: Context) -> list[Contender]:
    options = context.options
    keys = [k for k in KEYS if k in options.contenders] or options.chosen(KEYS, SMOKE)
    result = []
    for key in keys:
        factory, server, protection = CONTENDERS[key]
        flags = ("--backpressure", str(GRANIAN_BACKPRESSURE)) if key.endswith("-bp") else ()
        app = AppProcess(key, f"bench.apps:{factory}", server=server, server_flags=flags)
        result.append(Contender(key, app, protection))
    if options.baseline is not None:
        app = AppProcess(
            "envelope-before", "bench.apps:protected_app", python_path=python_path(options.baseline)
        )
        result.append(Contender("envelope-before", app, "envelope"))
    return result


def check(contender: Contender) -> list[Check]:
    """Answers, headers and refusals; the bare app must refuse nothing."""
    carries_headers = contender.protection != "none"
    protected = contender.protection not in ("none", "headers")
    checks: list[Check] = []

    def add(question: str, expected: str, got: str) -> None:
        checks.append(Check("plain", contender.key, question, expected, got))

    with httpx.Client(base_url=contender.url, timeout=5.0) as client:
        got = client.get("/json", headers=contender.session)
        add("GET /json", OK_BODY, answer(got))
        nosniff = got.headers.get("x-content-type-options") == "nosniff"
        add("GET /json carries X-Content-Type-Options: nosniff", str(carries_headers), str(nosniff))
        got = client.post("/submit", content=POST_BODY, headers=contender.post_headers())
        add("same-origin POST /submit", OK_BODY, answer(got))
        # A forged request: the browser attaches the cookie, but the attacker's page can
        # neither read the token nor make the browser omit every origin header; the
        # harshest case for header-based CSRF is none sent.
        headers = {"Content-Type": "application/json", **contender.session}
        got = client.post("/submit", content=POST_BODY, headers=headers)
        add(
            "POST /submit without Origin, Sec-Fetch-Site, Referer or token",
            "403" if protected else "200",
            str(got.status_code),
        )
        if contender.protection in ("envelope", "django"):
            cross = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
            got = client.post(
                "/submit", content=POST_BODY, headers={**contender.post_headers(), **cross}
            )
            add(
                "cross-site POST /submit (Origin https://evil.example)", "403", str(got.status_code)
            )
        got = client.get("/json", headers={**contender.session, "Host": "evil.example"})
        add(
            "GET /json with Host: evil.example", "400" if protected else "200", str(got.status_code)
        )
        if contender.key == "envelope-log":
            got = client.get("/json", headers=contender.session)
            line = access_line_written(contender.app, got.headers.get("x-request-id", "?"))
            add(
                "GET /json writes its JSON access line (route, status, request id)",
                "True",
                str(line),
            )
    return checks


def access_line_written(app: AppProcess, request_id: str, timeout: float = 5.0) -> bool:
    """Is there one JSON line on ``bastion.access`` for ``request_id`` in the server's output?"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in app.lines_with([request_id]):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("logger") == "bastion.access" and entry.get("route") == "/json":
                return bool(entry.get("status") == 200)
        time.sleep(0.05)
    return False


def scenario(context: Context) -> dict[str, Any]:
    """``{"figures": {endpoint: {key: summary}}, "ratios": {endpoint: {"a/b": paired}}}``."""
    chosen = contenders(context)
    say(f"plain: starting {len(chosen)} servers")
    with running([c.app for c in chosen]):
        for contender in chosen:
            contender.bootstrap()
            context.require(check(contender))
        cells = []
        for endpoint in ENDPOINTS:
            for c in chosen:
                post = endpoint.startswith("POST")
                text = (
                    static_script("POST", c.post_headers(), POST_BODY)
                    if post
                    else static_script("GET", c.session)
                )
                name = f"plain-{c.key}-{endpoint.split()[0].lower()}"
                url = c.url + endpoint.split()[1]
                cells.append(Cell(f"plain/{c.key} {endpoint}", url, context.script(name, text)))
        runs = measure(context, cells)
    keys = [c.key for c in chosen]
    figures: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    for n, endpoint in enumerate(ENDPOINTS):
        mine = dict(zip(keys, runs[n * len(keys) : (n + 1) * len(keys)], strict=True))
        figures[endpoint] = {key: summary(r) for key, r in mine.items()}
        pairs = {(k, "bare") for k in keys} | {("envelope", k) for k in keys}
        pairs |= set(EXTRA_RATIOS)
        ratios[endpoint] = {
            f"{a}/{b}": paired(mine[a], mine[b])
            for a, b in sorted(pairs)
            if a in mine and b in mine and a != b
        }
    return {"figures": figures, "ratios": ratios, "before": context.options.baseline_name or None}
