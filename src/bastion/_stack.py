"""``build_stack(app)``: the whole per-request stack in one call, in the one right order.

    request -> observer      begin: the request id (a trusted proxy's, or a new one)
            -> envelope      screen: proxy resolver -> hosts -> CSRF; a refusal is answered here
            -> your app      (the failure rule catches what escapes it)
            <- failure rule  client gone -> 499; database out of reach -> one WARNING
                             line, 503 with Retry-After; a bug -> one ERROR line, a clean 500
            <- envelope      the security headers the app did not set, and the request id
            <- observer      end: the access line and the request metrics

The three concerns are hook objects with no ASGI ``__call__`` of their own
(:class:`~bastion.ops._observe.RequestObserver`,
:class:`~bastion.hardening._chain.Envelope`, :class:`~bastion.ops._failures.FailureRule`),
and one small pure-ASGI driver (:class:`bastion._driver.Driver`) runs them:
one call, one ``send`` wrapper and one pass over the response headers per
request. The observer comes first and ends last, so refused requests are
logged and counted too, with the client IP the envelope resolved; the
failure rule's 500 is sent through the same wrapper, so it gets the
security headers and the request id. ``bastion.hardening.envelope()`` is the
same driver with the envelope's hooks alone.

Private on purpose: an app meets the stack through the one public
``protect``, :meth:`bastion.Bastion.protect`, which calls this function with
its own metrics and adds the operations endpoints, the login guard and the
inline jobs. An app that wants the envelope alone calls
:func:`bastion.hardening.envelope`.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp

from bastion._driver import Driver
from bastion.config import Settings, get_settings
from bastion.hardening._chain import Envelope, EnvelopeConfig
from bastion.ops._failures import FailureRule
from bastion.ops._metrics import Metrics
from bastion.ops._observe import RequestObserver


def build_stack(
    app: ASGIApp,
    settings: Settings | None = None,
    *,
    metrics: Metrics | None = None,
    **envelope_options: Any,
) -> Driver:
    """Wrap ``app``; pass ``metrics`` to count every decision (None: no metrics work at all).

    ``envelope_options`` go to :meth:`~bastion.hardening._chain.EnvelopeConfig.from_settings`
    (exempt paths, header overrides, HSTS value, a rejection hook, an error
    page; the page renders the failure rule's 500 for browsers too).
    """
    settings = settings or get_settings()
    if metrics is not None:
        envelope_options.setdefault("on_reject", metrics.on_reject)
    config = EnvelopeConfig.from_settings(settings, **envelope_options)
    return Driver(
        app,
        observer=RequestObserver(metrics=metrics, trusted_proxies=config.trusted_proxies),
        envelope=Envelope(config),
        failures=FailureRule(on_unavailable=metrics.database_errors.inc if metrics else None),
        error_page=config.error_page,
    )
