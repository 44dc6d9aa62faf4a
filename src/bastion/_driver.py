"""The one ASGI driver of the per-request stack: it runs the concerns' hooks around an app.

Each concern of the stack is an object with hooks and no ASGI ``__call__``
of its own:

- the observer (:class:`ObserverHooks`: ``begin`` names the request, ``end``
  records it), see :mod:`bastion.ops._observe`;
- the envelope (:class:`EnvelopeHooks`: ``screen`` decides, ``refuse`` answers a
  refusal), see :mod:`bastion.hardening._chain`;
- the failure rule (:class:`FailureHooks`: ``on_error`` turns what escapes
  the app into a status and, if nothing was sent yet, an answer), see
  :mod:`bastion.ops._failures`.

With a failure rule, an app's 500 is held back until the app is done: a
framework answers an exception with its own 500 before raising it again
(Starlette, FastAPI) or instead of raising it (Litestar, which leaves it in
the scope under :data:`EXCEPTION_KEY`), and the rule's answer for it (the
database's 503) must replace that 500, not follow it. An app's own 500 that
the rule would answer with a 500 too stands as the app sent it.

:class:`Driver` runs whichever of them it is given, in that order, with one
call per request, one ``send`` wrapper and one pass over the app's response
headers: the security headers the app did not set itself, and the request
id. So there is one implementation of every rule, wherever the stack is
built (``bastion._stack.build_stack`` for ``Bastion.protect``, and ``bastion.hardening.envelope``).

A websocket is screened (a refusal is a close with code 1008) and otherwise
handed to the app untouched; lifespan passes through. This module sits below
the concerns' packages and knows them only through the protocols here, so
each of them can build a driver without importing upwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.responses import ErrorPage, Refusal, send_refusal

Header = tuple[bytes, bytes]

#: Where a framework that answered an exception itself leaves it for the failure rule
#: (:func:`bastion.ops._failures.hear_exceptions` gives Litestar the hook that writes it).
EXCEPTION_KEY = "bastion.exception"

#: An app's 500 is held back until the app is done, up to this much body; past it,
#: it is no error page worth replacing and goes out as it comes.
MAX_HELD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Rejection:
    """The envelope's refusal of one request: which check (``host``, ``csrf``), why, and who."""

    kind: str
    refusal: Refusal
    #: The client as resolved through the trusted proxies (for the log line).
    client: str | None


class PathRule(NamedTuple):
    """The headers added below one path prefix, in place of the app-wide ones.

    A path matches when it is ``prefix`` itself or starts with ``below`` (the
    prefix with a trailing slash): segment by segment, so ``/docs`` covers
    ``/docs/oauth2-redirect`` and not ``/docsx``.
    """

    prefix: str
    below: str
    plain: tuple[Header, ...]
    secure: tuple[Header, ...]


#: The client and scheme resolved through trusted proxies, to write into the scope.
Resolved = tuple[tuple[str, int] | None, str]

#: What :meth:`EnvelopeHooks.screen` answers: https (for HSTS), the rejection to answer or
#: None, and the resolution to write into the scope or None (nothing to change).
Screening = tuple[bool, Rejection | None, Resolved | None]


class ObserverHooks(Protocol):
    """Names each http request and records it once its answer is complete."""

    #: The request-id response header, lower case.
    @property
    def header(self) -> bytes: ...

    def begin(self, scope: Scope) -> str:
        """The request's id."""
        ...

    def end(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        """Record the request: its status (499 if the client left) and how long it took."""
        ...


class EnvelopeHooks(Protocol):
    """Decides on each http and websocket request before the app runs, and answers refusals."""

    def added_headers(self, https: bool) -> tuple[Header, ...]:
        """The headers every response gets unless the app set them itself."""
        ...

    def path_rules(self) -> tuple[PathRule, ...]:
        """Other headers for paths below some prefixes, the longest prefix first."""
        ...

    def screen(self, scope: Scope) -> Screening:
        """The decision; it must neither log, nor count, nor change the scope."""
        ...

    async def refuse(self, scope: Scope, send: Send, rejection: Rejection) -> None:
        """Answer ``rejection`` (and say so, once, in the log and the metrics)."""
        ...


class FailureHooks(Protocol):
    """What an exception out of the app becomes."""

    def on_error(
        self, scope: Scope, exc: Exception, answered: bool
    ) -> tuple[int | None, Refusal | None]:
        """The status to record (None: the one sent) and the answer to send, if any."""
        ...


class Driver:
    """Pure ASGI: ``observer`` -> ``envelope`` -> ``failures`` -> ``app``, each optional."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        observer: ObserverHooks | None = None,
        envelope: EnvelopeHooks | None = None,
        failures: FailureHooks | None = None,
        error_page: ErrorPage | None = None,
    ) -> None:
        """``error_page`` renders the failure rule's 500 for browsers (the envelope has its own)."""
        self.app = app
        self.observer = observer
        self.envelope = envelope
        self.failures = failures
        self.error_page = error_page
        self._plain: tuple[Header, ...] = ()
        self._secure: tuple[Header, ...] = ()
        self._rules: tuple[PathRule, ...] = ()
        if envelope is not None:
            self._plain = envelope.added_headers(False)
            self._secure = envelope.added_headers(True)
            self._rules = envelope.path_rules()
        #: Every prefix, and every prefix with its slash: one test tells most paths no rule applies.
        self._rule_exact = frozenset(rule.prefix for rule in self._rules)
        self._rule_below = tuple(rule.below for rule in self._rules)
        names = {name for name, _ in (*self._plain, *self._secure)}
        for rule in self._rules:
            names.update(name for name, _ in (*rule.plain, *rule.secure))
        if observer is not None:
            names.add(observer.header)
        #: Every header name the ``send`` wrapper may add, to tell at once whether the app set any.
        self.header_names = frozenset(names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        # The http path is written out in one frame: it runs on every request.
        observer = self.observer
        envelope = self.envelope
        started = 0.0
        request_id = ""
        stamp: Header | None = None
        if observer is not None:
            started = time.perf_counter()
            request_id = observer.begin(scope)
            # Published for the hooks inside (the failure log line names it).
            scope["bastion.request_id"] = request_id
            stamp = (observer.header, request_id.encode("latin-1"))
        rejection: Rejection | None = None
        added = self._plain
        if envelope is not None:
            https, rejection, resolved = envelope.screen(scope)
            if resolved is not None:  # in place, as in _resolve (inlined: every request)
                scope["client"], scope["scheme"] = resolved
            added = self._secure if https else self._plain
            if self._rules:
                added = self._headers_at(scope["path"], https, added)
        reply = _Reply(send, added, self.header_names, stamp, hold=self.failures is not None)
        try:
            if rejection is not None:
                assert envelope is not None
                await envelope.refuse(scope, reply, rejection)
                return
            try:
                await self.app(scope, receive, reply)
            except Exception as exc:
                if self.failures is None:
                    raise
                await self._fail(scope, reply, exc)
            if reply.held is not None:
                # A framework that answered an exception itself (Litestar) left it here.
                error = scope.pop(EXCEPTION_KEY, None)
                if error is not None:
                    await self._fail(scope, reply, error)
                await reply.release()
        finally:
            if observer is not None:
                observer.end(scope, reply.status, time.perf_counter() - started, request_id)

    async def _fail(self, scope: Scope, reply: _Reply, exc: Exception) -> None:
        """Ask the failure rule about ``exc``; send its answer unless the app's own 500 stands."""
        assert self.failures is not None
        recorded, answer = self.failures.on_error(scope, exc, reply.answered)
        if recorded is not None:
            reply.status = recorded
        if answer is not None and (reply.held is None or answer.status != 500):
            reply.held = None  # the answer replaces the app's 500 for this exception
            reply.hold = False
            await send_refusal(scope, reply, answer, page=self.error_page)

    def _headers_at(
        self, path: str, https: bool, default: tuple[Header, ...]
    ) -> tuple[Header, ...]:
        """The headers of the longest prefix ``path`` is below, or ``default`` if none."""
        if path not in self._rule_exact and not path.startswith(self._rule_below):
            return default  # the usual case: two tests in C
        for rule in self._rules:  # longest prefix first
            if path == rule.prefix or path.startswith(rule.below):
                return rule.secure if https else rule.plain
        return default

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A websocket is screened, then handed over untouched; anything else passes through."""
        envelope = self.envelope
        if scope["type"] == "websocket" and envelope is not None:
            _, rejection, resolved = envelope.screen(scope)
            if resolved is not None:
                _resolve(scope, resolved)
            if rejection is not None:
                await envelope.refuse(scope, send, rejection)
                return
        await self.app(scope, receive, send)


class _Reply:
    """The one ``send`` wrapper of a request: headers added, status kept, a 500 held back.

    With ``hold``, the app's 500 is kept (up to :data:`MAX_HELD_BYTES` of body)
    until :meth:`release`, so that the failure rule can replace it with its
    answer for the exception behind it.
    """

    __slots__ = (
        "added",
        "answered",
        "held",
        "held_bytes",
        "hold",
        "names",
        "send",
        "stamp",
        "status",
    )

    def __init__(
        self,
        send: Send,
        added: tuple[Header, ...],
        names: frozenset[bytes],
        stamp: Header | None,
        *,
        hold: bool,
    ) -> None:
        self.send = send
        self.added = added
        self.names = names
        self.stamp = stamp
        self.hold = hold
        #: What the server answers if the app fails before responding.
        self.status = 500
        #: Whether the answer's start went out to the client.
        self.answered = False
        self.held: list[Message] | None = None
        self.held_bytes = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = add_missing(message.get("headers", ()), self.added, self.names, self.stamp)
            message = {**message, "headers": headers}
            if self.status == 500 and self.hold:
                self.held = [message]
                return
            self.answered = True
        elif self.held is not None:
            self.held.append(message)
            self.held_bytes += len(message.get("body", b""))
            if self.held_bytes <= MAX_HELD_BYTES:
                return
            await self.release()  # too big to be an error page: it goes out as it comes
            return
        await self.send(message)

    async def release(self) -> None:
        """Send the held 500, if any: the app's own answer stands."""
        held, self.held = self.held, None
        if held is not None:
            self.answered = True  # the status stays: a hang-up's 499 is not the 500's
            for message in held:
                await self.send(message)


def _resolve(scope: Scope, resolved: Resolved) -> None:
    """Write the resolved client and scheme in place, as uvicorn's proxy-headers middleware does.

    In place rather than in a copy, so that everything after (the access line,
    the app) sees the real client.
    """
    scope["client"], scope["scheme"] = resolved


def add_missing(
    headers: Iterable[Header],
    added: tuple[Header, ...],
    names: frozenset[bytes],
    stamp: Header | None = None,
) -> list[Header]:
    """``headers`` plus each of ``added`` and ``stamp`` whose name the app did not set itself.

    ``names`` holds every name ``added`` and ``stamp`` may carry, lower case.
    One pass over the app's few headers; in the usual case none of them is
    among ``names``, and all go in as they are.
    """
    result = list(headers)
    for name, _ in result:
        if name.lower() in names:
            break
    else:
        result.extend(added)
        if stamp is not None:
            result.append(stamp)
        return result
    present = {name.lower() for name, _ in result}
    result.extend(h for h in added if h[0] not in present)
    if stamp is not None and stamp[0] not in present:
        result.append(stamp)
    return result
