"""The example app under attack: a real uvicorn process, its database, its Valkey and its log.

:class:`Target` sends one raw request at a time and answers three questions
about it: what came back, what the app logged for it (found by the request id
the test chose, which the app accepts from its loopback proxy), and whether
anything it keeps changed: rows in the database (sessions' ``last_seen_at``
aside, which any request with a live session refreshes once a minute by
design), keys and values in Valkey (keys that merely expired aside), and the
app's in-process state (the hardening sandbox's counter, the inline jobs it deferred).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import valkey

from tests.hostile.corpus import ADMIN_EMAIL, ADMIN_PASSWORD, Case
from tests.support.rawhttp import RawResponse, exchange
from tests.support.servers import AppServer

__all__ = ["REFUSED", "Outcome", "State", "Target", "Verdict"]


#: Lines that must never appear: our own ERROR level, uvicorn's, or any traceback.
ERROR_LINE = re.compile(r" ERROR |^ERROR:|Traceback|Exception in ASGI application")

_TABLES = {
    "users": "SELECT * FROM users ORDER BY id",
    "sessions": (
        "SELECT id, token_hash, user_id, created_at, expires_at, ip, user_agent"
        " FROM sessions ORDER BY id"
    ),
    # Append-only (its triggers refuse UPDATE and DELETE), so the count and the
    # last id show any change, at a cost that does not grow with the table.
    "audit_log": "SELECT count(*), max(id) FROM audit_log",
}
#: The status in an access line: "POST /sign-up 499 1.2ms client=... id=...".
_LOGGED_STATUS = re.compile(r"bastion\.access: \S+ \S+ (\d{3}) ")

#: Answers that refuse the request as it stands; anything refused must have changed nothing.
#: (401, 409 and 429 answer a well-formed attempt: they are audited and counted.)
REFUSED = frozenset(range(400, 500)) - {401, 409, 429}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

#: Slack for a key's TTL between two snapshots (clock reads, round trips).
_TTL_SLACK_MS = 1500


@dataclass(frozen=True)
class State:
    """Everything the app keeps, at one moment."""

    taken_at: float
    rows: dict[str, list[tuple[Any, ...]]]
    keys: dict[bytes, tuple[bytes | None, int]]  # key -> (DUMP, PTTL at taken_at)
    memory: dict[str, float]  # what the app keeps in its process, by name

    def changes_since(self, before: State) -> list[str]:
        """What differs from ``before``, other than keys that expired or kept counting down."""
        found = []
        for name, rows in self.rows.items():
            if rows != before.rows[name]:
                added = [row for row in rows if row not in before.rows[name]]
                gone = [row for row in before.rows[name] if row not in rows]
                found.append(f"table {name}: +{str(added)[:300]} -{str(gone)[:300]}")
        found.extend(
            f"{name} {before.memory[name]} -> {value}"
            for name, value in self.memory.items()
            if value != before.memory[name]
        )
        elapsed_ms = (self.taken_at - before.taken_at) * 1000
        for key, (dump, ttl) in before.keys.items():
            if key not in self.keys:
                if ttl < 0 or ttl > elapsed_ms + _TTL_SLACK_MS:
                    found.append(f"key {key!r} deleted")
                continue
            new_dump, new_ttl = self.keys[key]
            if new_dump != dump:
                found.append(f"key {key!r} rewritten")
            elif (new_ttl < 0) != (ttl < 0) or (ttl >= 0 and new_ttl > ttl + _TTL_SLACK_MS):
                found.append(f"key {key!r} TTL reset")
        found.extend(f"key {key!r} created" for key in self.keys.keys() - before.keys.keys())
        return found


@dataclass
class Outcome:
    """One request's answer (None: the client hung up) and the log lines it caused."""

    request_id: str
    response: RawResponse | None
    log: list[str] = field(default_factory=list)

    @property
    def status(self) -> int | None:
        """The status sent, or for a client that hung up, the one the app logged (499 or not)."""
        if self.response is not None:
            return self.response.status
        for line in reversed(self.log):
            found = _LOGGED_STATUS.search(line)
            if found is not None and line.endswith(f"id={self.request_id}"):
                return int(found.group(1))
        return None

    @property
    def errors(self) -> list[str]:
        return [line for line in self.log if ERROR_LINE.search(line)]


@dataclass
class Verdict:
    """One hostile request, what came of it, and what was wrong with that."""

    method: str
    path: str
    case: str
    outcome: Outcome
    changes: list[str]

    def problems(self) -> list[str]:
        found = []
        status = self.outcome.status
        if status is not None and status >= 500:
            found.append(f"answered {status}")
        found.extend(f"logged: {line[:300]}" for line in self.outcome.errors)
        # A client that hung up before the app answered (logged as 499, or not at
        # all) changed nothing; one whose request was already complete may have.
        must_not_change = self.method in SAFE_METHODS or status is None or status in REFUSED
        if must_not_change and self.changes:
            found.append(f"{status or 'hung up'} but changed: {', '.join(self.changes)}")
        return found

    def __str__(self) -> str:
        return (
            f"{self.method} {self.path[:80]} [{self.case}] -> {self.outcome.status}: "
            + "; ".join(self.problems())
        )


class Target:
    def __init__(self, server: AppServer, database_url: str, valkey_url: str) -> None:
        self.server = server
        self.port = server.port
        self.origin = server.url
        self._tables = _Tables(database_url)
        self._valkey = valkey.Valkey.from_url(valkey_url)
        self._ids = itertools.count()
        self._log = open(server.log.name, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._log_pending = ""
        self._http = httpx.Client(base_url=server.url, timeout=30)
        self._admin_cookie: str | None = None
        self._state: State | None = None
        self._next_job: int | None = None
        self._first_job = 0
        self.requests_sent = 0

    def close(self) -> None:
        self._tables.close()
        self._valkey.close()  # type: ignore[no-untyped-call]
        self._http.close()
        self._log.close()

    # -- requests ---------------------------------------------------------------------------

    def attack(self, method: str, path: str, case: Case) -> Verdict:
        """``case`` sent as ``method`` to ``path``, with the state compared before and after."""
        headers = [
            (name, self.admin_cookie() if (name, value) == ("Cookie", "admin") else value)
            for name, value in case.request_headers(self.origin)
        ]
        before = self._state if self._state is not None else self.state()
        outcome = self.send(
            method, path, headers, case.wire_body(), hang_up_after=case.hang_up_after
        )
        self._state = after = self.state()
        return Verdict(method, path, case.name, outcome, after.changes_since(before))

    def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        *,
        hang_up_after: int | None = None,
    ) -> Outcome:
        """One raw request with its own request id; waits for its access line in the log."""
        request_id = f"hostile-{next(self._ids)}"
        all_headers = [
            ("Host", f"127.0.0.1:{self.port}"),
            *headers,
            ("X-Request-ID", request_id),
            ("Connection", "close"),
        ]
        response = exchange(
            self.port, method, target, all_headers, body, hang_up_after=hang_up_after
        )
        self.requests_sent += 1
        marker = f"id={request_id}"
        if response is None:
            # The app runs on after the client left (a handler that never reads the body
            # finishes its work): wait for its access line, or the next request would be
            # blamed for what this one did. No line at all: the server refused the head.
            return Outcome(request_id, None, self._log_until(marker, 60.0, required=False))
        if response.header("x-request-id") is None:
            # Refused by uvicorn's own parser (malformed framing): the app never ran.
            return Outcome(request_id, response, self._log_until(marker, 0.05, required=False))
        return Outcome(request_id, response, self._log_until(marker))

    def _log_until(self, marker: str, timeout: float = 10.0, *, required: bool = True) -> list[str]:
        """The log lines written since the last call, up to and including ``marker``'s line.

        The access line is the last thing the app writes for a request (after
        any ERROR line), so once it is there, the request has said everything.
        Without ``required``, whatever was written by ``timeout`` is taken.
        """
        deadline = time.monotonic() + timeout
        while True:
            self._log_pending += self._log.read()
            new = self._log_pending
            if marker in new:
                end = new.find("\n", new.index(marker))
                end = len(new) if end < 0 else end + 1
                self._log_pending = new[end:]
                return new[:end].splitlines()
            if time.monotonic() > deadline:
                if required:
                    raise AssertionError(f"no log line for {marker} in {timeout}s:\n{new[-3000:]}")
                self._log_pending = ""
                return new.splitlines()
            time.sleep(0.002)

    # -- sessions ---------------------------------------------------------------------------

    def admin_cookie(self) -> str:
        """A live administrator session, signed in again if a request signed it out."""
        if self._admin_cookie is None or not self._session_alive(self._admin_cookie):
            response = self._http.post(
                "/api/auth/sign-in",
                json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                headers={"origin": self.origin},
            )
            assert response.status_code == 200, response.text
            self._admin_cookie = response.headers["set-cookie"].split(";", 1)[0]
            self._http.cookies.clear()  # sent only where a test asks for it
            self._state = None  # a new session row and an audit row
        return self._admin_cookie

    def _session_alive(self, cookie: str) -> bool:
        response = self._http.get("/api/auth/session", headers={"cookie": cookie})
        return response.json()["user"] is not None

    # -- state ------------------------------------------------------------------------------

    def state(self) -> State:
        rows = {name: self._tables.read(query) for name, query in _TABLES.items()}
        keys: dict[bytes, tuple[bytes | None, int]] = {}
        names = sorted(self._valkey.keys("*"))  # type: ignore[arg-type]
        if names:
            pipe = self._valkey.pipeline(transaction=False)
            for name in names:
                pipe.dump(name)
                pipe.pttl(name)
            replies = pipe.execute()  # type: ignore[no-untyped-call]
            for index, name in enumerate(names):
                dump, ttl = replies[2 * index], replies[2 * index + 1]
                if ttl != -2:  # -2: expired between KEYS and PTTL
                    keys[name] = (dump, ttl)
        memory = {
            "hardening counter": float(
                json.loads(self._get("/api/sandbox/hardening") or b"")["counter"]
            ),
            "jobs deferred": float(self._jobs_seen()),
        }
        return State(time.monotonic(), rows, keys, memory)

    def _jobs_seen(self) -> int:
        """How many sandbox jobs exist past the one deferred at the start.

        Inline job ids count up by one, so asking for the next id is enough to
        see a new job (a scrape of /api/metrics would say the same at ten
        times the cost, on every snapshot).
        """
        if self._next_job is None:
            created = self._http.post("/api/sandbox/jobs", json={}, headers={"origin": self.origin})
            assert created.status_code == 201, created.text
            self._next_job = self._first_job = int(created.json()["id"]) + 1
        while self._get(f"/api/sandbox/jobs/{self._next_job}", missing_ok=True) is not None:
            self._next_job += 1
        return self._next_job - self._first_job

    def _get(self, path: str, *, missing_ok: bool = False) -> bytes | None:
        headers = [("Host", f"127.0.0.1:{self.port}"), ("Connection", "close")]
        response = exchange(self.port, "GET", path, headers)
        assert response is not None
        if missing_ok and response.status == 404:
            return None
        assert response.status == 200, response
        return response.body


class _Tables:
    """Whole tables, read fast: stdlib sqlite3 for SQLite, one asyncpg connection for PostgreSQL."""

    def __init__(self, database_url: str) -> None:
        self._sqlite: sqlite3.Connection | None = None
        self._runner: asyncio.Runner | None = None
        if database_url.startswith("sqlite:///"):
            path = database_url.removeprefix("sqlite:///")
            self._sqlite = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        else:
            self._runner = asyncio.Runner()
            self._postgres = self._runner.run(asyncpg.connect(database_url))

    def read(self, query: str) -> list[tuple[Any, ...]]:
        if self._sqlite is not None:
            return self._sqlite.execute(query).fetchall()
        assert self._runner is not None
        return [tuple(row) for row in self._runner.run(self._postgres.fetch(query))]

    def close(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
        if self._runner is not None:
            self._runner.run(self._postgres.close())
            self._runner.close()
