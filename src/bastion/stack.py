"""``protect(app)``: the whole per-request stack in one call, in the one right order.

    request -> RequestObserver (id, access log, metrics)
            -> Envelope (proxy resolver -> hosts -> CSRF -> security headers)
            -> your app

The observer is outermost so that refused requests are logged and counted
too, and it reads the client IP the envelope resolved. Composed here, the two
share one ``send`` wrapper: the envelope, which rewrites every response's
headers anyway, also stamps the observer's request id and notes the status
(see ``Envelope.carry_request_id``), since this stack runs on every request.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from bastion.config import Settings, get_settings
from bastion.hardening import envelope
from bastion.ops.metrics import Metrics
from bastion.ops.observe import RequestObserver

__all__ = ["protect"]


def protect(
    app: ASGIApp,
    settings: Settings | None = None,
    *,
    metrics: Metrics | None = None,
    **envelope_options: Any,
) -> RequestObserver:
    """Wrap ``app``; pass ``metrics`` to count every decision (None: no metrics work at all)."""
    settings = settings or get_settings()
    if metrics is not None:
        envelope_options.setdefault("on_reject", metrics.on_reject)
    hardened = envelope(app, settings, **envelope_options)
    observer = RequestObserver(
        hardened,
        metrics=metrics,
        trusted_proxies=hardened.config.trusted_proxies,
        stamped_by_app=True,
    )
    hardened.carry_request_id(observer.header)
    return observer
