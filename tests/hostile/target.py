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
from tests.support.rawhttp import KeepAlive, RawResponse, exchange
from tests.support.servers import AppServer

__all__ = ["BATCH", "REFUSED", "Attack", "Outcome", "State", "Target", "Verdict"]


#: Lines that must never appear: our own ERROR level, uvicorn's, or any traceback.
ERROR_LINE = re.compile(r" ERROR |^ERROR:|Traceback|Exception in ASGI application")

_TABLES = {
    "bastion_user": "SELECT * FROM bastion_user ORDER BY id",
    "bastion_session": (
        "SELECT id, token_hash, user_id, created_at, expires_at, ip, user_agent"
        " FROM bastion_session ORDER BY id"
    ),
    # Append-only (its triggers refuse UPDATE and DELETE), so the count and the
    # last id show any change, at a cost that does not grow with the table.
    "bastion_audit_log": "SELECT count(*), max(id) FROM bastion_audit_log",
    # The newest challenge handed out (a sweep deletes only rows five minutes old).
    "bastion_webauthn_challenge": "SELECT max(id) FROM bastion_webauthn_challenge",
}
#: The token of a reset link in the console transport's mail line.
_RESET_TOKEN = re.compile(r"/reset-password\?token=([A-Za-z0-9_-]+)")
#: The status in an access line: "POST /sign-up 499 1.2ms client=... id=...".
_LOGGED_STATUS = re.compile(r"bastion\.access: \S+ \S+ (\d{3}) ")
#: The request id a line names (access and ERROR lines end with it, or with a path after it).
_LOGGED_ID = re.compile(r"(?:^|\s)id=(hostile-\d+)(?:\s|$)")
#: The request id of an access line, the last line the app writes for a request.
_ACCESS_ID = re.compile(r"bastion\.access: .*? id=(hostile-\d+)(?:\s|$)", re.MULTILINE)

#: Answers that refuse the request as it stands; anything refused must have changed nothing.
#: (401, 409 and 429 answer a well-formed attempt: they are audited and counted.)
REFUSED = frozenset(range(400, 500)) - {401, 409, 429}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

#: Slack for a key's TTL between two snapshots (clock reads, round trips).
_TTL_SLACK_MS = 1500
#: How long a snapshot waits for the jobs the requests before it deferred to run once.
_SETTLE_SECONDS = 2.0
#: Requests per snapshot in :meth:`Target.attack_all`: large enough that the
#: snapshots cost little, small enough that a batch to replay stays short.
BATCH = 32


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
            named = _LOGGED_ID.search(line)
            if found is not None and named is not None and named.group(1) == self.request_id:
                return int(found.group(1))
        return None

    @property
    def errors(self) -> list[str]:
        return [line for line in self.log if ERROR_LINE.search(line)]


@dataclass
class Verdict:
    """One hostile request, what came of it, and what was wrong with that.

    ``changes`` are the request's own when it was sent alone; in a batch, those
    of the whole batch, kept only on the requests that were allowed to make
    them. A request that was not allowed to, in a batch that changed
    something, is sent again alone: ``replay`` is that exact verdict. When no
    request alone repeats the batch's change, ``unexplained`` keeps it, so a
    change is never dropped for want of a culprit.
    """

    method: str
    path: str
    case: str
    outcome: Outcome
    changes: list[str]
    replay: Verdict | None = None
    unexplained: list[str] = field(default_factory=list)

    @property
    def must_not_change(self) -> bool:
        """Safe methods, refusals, and clients that hung up before the app answered.

        A client that hung up before the app answered (logged as 499, or not at
        all) changed nothing; one whose request was already complete may have.
        """
        status = self.outcome.status
        return self.method in SAFE_METHODS or status is None or status in REFUSED

    def problems(self) -> list[str]:
        found = []
        status = self.outcome.status
        if status is not None and status >= 500:
            found.append(f"answered {status}")
        found.extend(f"logged: {line[:300]}" for line in self.outcome.errors)
        if self.must_not_change and self.changes:
            found.append(f"{status or 'hung up'} but changed: {', '.join(self.changes)}")
        if self.replay is not None:
            found.extend(f"sent again alone: {problem}" for problem in self.replay.problems())
        if self.unexplained:
            found.append(
                f"{status or 'hung up'} in a batch that changed {', '.join(self.unexplained)},"
                " and no request of it, sent again alone, did"
            )
        return found

    def __str__(self) -> str:
        return (
            f"{self.method} {self.path[:80]} [{self.case}] -> {self.outcome.status}: "
            + "; ".join(self.problems())
        )


@dataclass(frozen=True)
class Attack:
    """One hostile request to send: ``case`` as ``method`` to ``path``."""

    method: str
    path: str
    case: Case

    @property
    def keeps_the_connection(self) -> bool:
        """Whether another request can follow on the same connection.

        Only when the body is framed exactly and sent whole: a lie in the
        Content-Length, a hang-up or a 100-continue handshake leave the stream
        in a state the next request must not inherit.
        """
        case = self.case
        return (
            case.hang_up_after is None
            and case.declared_length in ("true", None)
            and all(name.lower() != "expect" for name, _ in case.headers)
        )


@dataclass(frozen=True)
class _Sent:
    request_id: str
    response: RawResponse | None
    #: Wait for this request's access line: "yes"; "if any" (a client that hung up); "no".
    line: str


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
        self._keep_alive = KeepAlive(server.port)
        self._admin_cookie: str | None = None
        self._state: State | None = None
        self._next_job: int | None = None
        self._first_job = 0
        self.requests_sent = 0
        self.replayed = 0

    def close(self) -> None:
        self._tables.close()
        self._valkey.close()  # type: ignore[no-untyped-call]
        self._http.close()
        self._keep_alive.close()
        self._log.close()

    # -- requests ---------------------------------------------------------------------------

    def attack(self, method: str, path: str, case: Case) -> Verdict:
        """``case`` sent as ``method`` to ``path``, with the state compared before and after."""
        headers = self._headers(case)
        before = self._state if self._state is not None else self.state()
        outcome = self.send(
            method, path, headers, case.wire_body(), hang_up_after=case.hang_up_after
        )
        self._state = after = self.state()
        return Verdict(method, path, case.name, outcome, after.changes_since(before))

    def attack_all(self, attacks: list[Attack]) -> list[Verdict]:
        """Every attack, one verdict each (in order), with a snapshot per batch of :data:`BATCH`.

        A batch whose state did not change, or changed only where every request
        in it was allowed to change something, is settled by its two
        snapshots. Otherwise each request of it that was not allowed to is sent
        again on its own, between snapshots of its own, to name the culprit.
        """
        verdicts: list[Verdict] = []
        for first in range(0, len(attacks), BATCH):
            verdicts.extend(self._batch(attacks[first : first + BATCH]))
        return verdicts

    def _batch(self, attacks: list[Attack]) -> list[Verdict]:
        verdicts, changes = self._send_batch(attacks)
        if not changes:
            return verdicts
        if len(verdicts) == 1:
            verdicts[0].changes = changes
            return verdicts
        for verdict in verdicts:
            if not verdict.must_not_change:
                verdict.changes = changes  # any of these may have made them
        quiet = [
            (attack, verdict)
            for attack, verdict in zip(attacks, verdicts, strict=True)
            if verdict.must_not_change
        ]
        if not quiet:
            return verdicts
        self.replayed += len(quiet)
        if len(quiet) < len(verdicts):
            # Most often the allowed ones made the change: the quiet ones, sent again
            # together without them, show it by changing nothing.
            again, changed = self._send_batch([attack for attack, _ in quiet])
            if not changed:
                for (_, verdict), replay in zip(quiet, again, strict=True):
                    verdict.replay = replay
                return verdicts
        for attack, verdict in quiet:
            verdict.replay = self.attack(attack.method, attack.path, attack.case)
        if len(quiet) == len(verdicts) and not any(
            verdict.replay is not None and verdict.replay.changes for _, verdict in quiet
        ):
            verdicts[0].unexplained = changes
        return verdicts

    def _send_batch(self, attacks: list[Attack]) -> tuple[list[Verdict], list[str]]:
        """Send ``attacks`` between two snapshots: their verdicts (no changes yet), the changes."""
        headers = [self._headers(attack.case) for attack in attacks]
        before = self._state if self._state is not None else self.state()
        sent = [
            self._fire(
                attack.method,
                attack.path,
                own,
                attack.case.wire_body(),
                hang_up_after=attack.case.hang_up_after,
                keep_alive=attack.keeps_the_connection,
            )
            for attack, own in zip(attacks, headers, strict=True)
        ]
        self._keep_alive.close()  # no connection idles across a snapshot
        logs = self._collect(sent)
        self._state = after = self.state()
        verdicts = [
            Verdict(
                attack.method,
                attack.path,
                attack.case.name,
                Outcome(s.request_id, s.response, logs[s.request_id]),
                [],
            )
            for attack, s in zip(attacks, sent, strict=True)
        ]
        return verdicts, after.changes_since(before)

    def send(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        *,
        hang_up_after: int | None = None,
    ) -> Outcome:
        """One raw request on its own connection, with its own request id and its log lines."""
        sent = self._fire(method, target, headers, body, hang_up_after=hang_up_after)
        return Outcome(sent.request_id, sent.response, self._collect([sent])[sent.request_id])

    def _headers(self, case: Case) -> list[tuple[str, str]]:
        return [
            (name, self.admin_cookie() if (name, value) == ("Cookie", "admin") else value)
            for name, value in case.request_headers(self.origin)
        ]

    def _fire(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        hang_up_after: int | None = None,
        keep_alive: bool = False,
    ) -> _Sent:
        """Send one request, on the kept-alive connection or (``Connection: close``) its own."""
        request_id = f"hostile-{next(self._ids)}"
        all_headers = [("Host", f"127.0.0.1:{self.port}"), *headers, ("X-Request-ID", request_id)]
        self.requests_sent += 1
        if keep_alive:
            response: RawResponse | None = self._keep_alive.request(
                method, target, all_headers, body
            )
        else:
            all_headers.append(("Connection", "close"))
            response = exchange(
                self.port, method, target, all_headers, body, hang_up_after=hang_up_after
            )
        if response is None:
            # The app runs on after the client left (a handler that never reads the body
            # finishes its work): its access line is awaited before the next snapshot.
            # No line at all: the server refused the head.
            return _Sent(request_id, None, "if any")
        if response.header("x-request-id") is None:
            # Refused by uvicorn's own parser (malformed framing): the app never ran, and
            # uvicorn logs its warning before it answers, so that line is already written.
            return _Sent(request_id, response, "no")
        return _Sent(request_id, response, "yes")

    def _collect(self, sent: list[_Sent]) -> dict[str, list[str]]:
        """The log lines of ``sent``, by request id, once every access line due is written.

        The access line is the last thing the app writes for a request (after
        any ERROR line), and it names the request id, as ERROR lines do. A
        line that names no id (uvicorn's own) goes with the next one that
        does, and lines after the last one with the last request.
        """
        self._read_log_until([s.request_id for s in sent if s.line == "yes"], 30.0, required=True)
        self._read_log_until(
            [s.request_id for s in sent if s.line == "if any"], 60.0, required=False
        )
        complete, _, self._log_pending = self._log_pending.rpartition("\n")
        logs: dict[str, list[str]] = {s.request_id: [] for s in sent}
        waiting: list[str] = []
        for line in complete.splitlines() if complete else []:
            named = _LOGGED_ID.search(line)
            if named is not None and named.group(1) in logs:
                logs[named.group(1)].extend([*waiting, line])
                waiting = []
            else:
                waiting.append(line)
        logs[sent[-1].request_id].extend(waiting)
        return logs

    def _read_log_until(self, request_ids: list[str], timeout: float, *, required: bool) -> None:
        """Read the log until it names every one of ``request_ids``, for at most ``timeout``."""
        missing = set(request_ids)
        deadline = time.monotonic() + timeout
        while True:
            fresh = self._log.read()
            self._log_pending += fresh
            if missing:
                missing -= {m.group(1) for m in _ACCESS_ID.finditer(self._log_pending)}
            if not missing:
                return
            if time.monotonic() > deadline:
                if required:
                    raise AssertionError(
                        f"no log line for {sorted(missing)} in {timeout}s:\n"
                        f"{self._log_pending[-3000:]}"
                    )
                return
            if not fresh:
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

    def admin_session_id(self) -> str:
        """The public id of the administrator's live session (what the session routes take)."""
        response = self._http.get("/api/auth/sessions", headers={"cookie": self.admin_cookie()})
        assert response.status_code == 200, response.text
        return str(next(each["id"] for each in response.json()["sessions"] if each["current"]))

    def admin_elsewhere(self) -> None:
        """One more administrator session, on no device of ours: for "end all others" to end."""
        response = self._http.post(
            "/api/auth/sign-in",
            json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
            headers={"origin": self.origin},
        )
        assert response.status_code == 200, response.text
        self._http.cookies.clear()
        self._state = None

    def reset_token(self, email: str) -> str:
        """A live password-reset token for ``email``, from the console mail line in the log.

        Asked for outside any snapshot (it writes an audit row and a token),
        as :meth:`admin_cookie` signs in.
        """
        before = set(_RESET_TOKEN.findall(self.server.output()))
        response = self._http.post(
            "/api/auth/password-reset", json={"email": email}, headers={"origin": self.origin}
        )
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            fresh = set(_RESET_TOKEN.findall(self.server.output())) - before
            if fresh:
                self._state = None
                return str(fresh.pop())
            time.sleep(0.01)
        raise AssertionError(f"no reset link for {email} in the log")

    def _session_alive(self, cookie: str) -> bool:
        response = self._http.get("/api/auth/session", headers={"cookie": cookie})
        # An ended session's cookie is a 401 (SESSION_ENDED); no cookie, 200 {"user": null}.
        return response.status_code == 200 and response.json()["user"] is not None

    # -- state ------------------------------------------------------------------------------

    def state(self) -> State:
        # Jobs first: a job a request deferred (a password reset writes its audit row in
        # one) must have run before the tables are read, or its rows land in the next batch.
        jobs_deferred = float(self._jobs_seen())
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
            "jobs deferred": jobs_deferred,
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
        fresh = []
        while (
            found := self._get(f"/api/sandbox/jobs/{self._next_job}", missing_ok=True)
        ) is not None:
            fresh.append((self._next_job, found))
            self._next_job += 1
        self._settle(fresh)
        return self._next_job - self._first_job

    def _settle(self, jobs: list[tuple[int, bytes]]) -> None:
        """Wait (at most :data:`_SETTLE_SECONDS`) for the first run of each job in ``jobs``.

        An inline job starts once its response is sent, and may write rows
        (a password reset's audit row). A job that waits for a delay or a
        retry is left to it: the sandbox's demo jobs write none.
        """
        deadline = time.monotonic() + _SETTLE_SECONDS
        for job_id, first in jobs:
            state = json.loads(first)
            while state["status"] == "running" or (
                state["status"] == "waiting" and state["attempts"] == 0
            ):
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
                state = json.loads(self._get(f"/api/sandbox/jobs/{job_id}") or b"")

    def _get(self, path: str, *, missing_ok: bool = False) -> bytes | None:
        response = self._http.get(path)
        if missing_ok and response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.content


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
