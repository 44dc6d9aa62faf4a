"""``protect(app)``: the whole per-request stack in one call, in the one right order.

    request -> RequestObserver (id, access log, metrics)
            -> Envelope (proxy resolver -> hosts -> CSRF -> security headers)
            -> FailureGuard (client gone -> 499; a bug -> clean 500, one ERROR line)
            -> your app

The observer is outermost so that refused requests are logged and counted
too, and it reads the client IP the envelope resolved. The guard is
innermost so that the 500 it answers for a failed app still passes through
the envelope and gets the security headers and the request id.

Each layer does its own job with its own ``send`` wrapper when used on its own: the observer
stamps its request id and notes the status, the envelope adds the security
headers, the guard notes whether an answer began. None reads another's state
from the scope but the request id, which the observer publishes. Inside
``protect()`` the three are built as three layers and then run as one
(:class:`~bastion.ops.onepass.OnePass`): the same code, with one call and
one ``send`` wrapper per http request instead of three.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from bastion.config import Settings, get_settings
from bastion.hardening import envelope
from bastion.ops.failures import FailureGuard
from bastion.ops.metrics import Metrics
from bastion.ops.observe import RequestObserver
from bastion.ops.onepass import OnePass

__all__ = ["protect"]


def protect(
    app: ASGIApp,
    settings: Settings | None = None,
    *,
    metrics: Metrics | None = None,
    **envelope_options: Any,
) -> OnePass:
    """Wrap ``app``; pass ``metrics`` to count every decision (None: no metrics work at all)."""
    settings = settings or get_settings()
    if metrics is not None:
        envelope_options.setdefault("on_reject", metrics.on_reject)
    hardened = envelope(FailureGuard(app), settings, **envelope_options)
    observer = RequestObserver(
        hardened,
        metrics=metrics,
        trusted_proxies=hardened.config.trusted_proxies,
    )
    return OnePass(observer)
