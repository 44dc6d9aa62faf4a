"""bastion.hardening: Django's SecurityMiddleware, CsrfViewMiddleware and ALLOWED_HOSTS
for any ASGI app, as one pure ASGI middleware (the driver with the envelope's hooks).

    from bastion.hardening import envelope
    app = envelope(app)                      # settings from the environment
    app = envelope(app, settings, csrf_exempt_paths=["/api/webhooks/"])

:func:`client_key` is the key the sign-in limiter counts a client under (an
IPv6 client by its /64), for code that keys its own counts the same way; the
decisions themselves (proxies, hosts, CSRF) are the envelope's business.
"""

from __future__ import annotations

from bastion.hardening._chain import envelope
from bastion.hardening._headers import DEFAULT_SECURITY_HEADERS
from bastion.hardening._proxy import client_key

__all__ = [
    "DEFAULT_SECURITY_HEADERS",
    "client_key",
    "envelope",
]
