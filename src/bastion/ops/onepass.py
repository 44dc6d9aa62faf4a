"""``protect()``'s three layers run as one: one call and one ``send`` wrapper per request.

Stacked, the request observer, the envelope and the failure guard each wrap
``send`` in a closure of their own, so every response message went through
three extra coroutines, and its start was copied twice (id, then headers).
On a request that costs bare Starlette a few tens of microseconds that was a
large part of the stack's cost, for no protection at all.

:class:`OnePass` runs the very same code in one frame: the observer's id
(:meth:`RequestObserver.request_id`), the envelope's checks
(:meth:`Envelope.screen`) and refusals (:meth:`Envelope.refuse`), the
guard's handling of a client that went away or a bug, and the observer's
record (:meth:`RequestObserver.record`). Its one ``send`` wrapper adds the
security headers and the request id in a single pass over the app's headers
and notes the status. Each layer keeps its own class, which behaves on its
own exactly as before; anything but an http request (websockets, lifespan)
goes through those stacked layers, so there is one implementation of every
rule.
"""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope, Send

from bastion.hardening.envelope import Envelope
from bastion.ops.failures import FailureGuard, internal_error, log_failure
from bastion.ops.observe import CLIENT_GONE, RequestObserver

__all__ = ["OnePass"]


class OnePass:
    """Pure ASGI: observer -> envelope -> failure guard -> ``app``, in one pass."""

    def __init__(self, observer: RequestObserver) -> None:
        """``observer`` must wrap an :class:`Envelope` that wraps a :class:`FailureGuard`."""
        envelope = observer.app
        if not isinstance(envelope, Envelope) or not isinstance(envelope.app, FailureGuard):
            raise TypeError("OnePass needs RequestObserver(Envelope(FailureGuard(app)))")
        #: The stacked layers: what anything but an http request goes through.
        self.stacked = observer
        self.observer = observer
        self.envelope = envelope
        self.app = envelope.app.app
        self.config = envelope.config
        self._add = envelope.config.security_headers.add
        self._id_name = observer.header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.stacked(scope, receive, send)
            return
        observer = self.observer
        started = time.perf_counter()
        request_id = observer.request_id(scope)
        # Published for the layers inside (the failure log line names it).
        scope["bastion.request_id"] = request_id
        https, refusal = self.envelope.screen(scope)
        stamp = (self._id_name, request_id.encode("latin-1"))
        add = self._add
        status = 500  # what the server answers if the app fails before responding
        answered = False

        async def send_once(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                answered = True
                message = {**message, "headers": add(message.get("headers", ()), https, stamp)}
            await send(message)

        try:
            if refusal is not None:
                await self.envelope.refuse(scope, send_once, refusal, https)
            else:
                try:
                    await self.app(scope, receive, send_once)
                except ClientDisconnect:
                    raise
                except Exception as exc:  # the failure guard's rule, see bastion.ops.failures
                    log_failure(scope, exc)
                    if not answered:  # nothing was sent: answer for the app
                        await internal_error(scope, send_once)
        except ClientDisconnect:
            # The client hung up: nobody is left to answer, and it is no error of
            # ours. The access line (INFO, with the id) and the metrics say 499.
            status = CLIENT_GONE
        finally:
            observer.record(scope, status, time.perf_counter() - started, request_id)
