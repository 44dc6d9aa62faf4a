"""bastion.hardening: Django's SecurityMiddleware, CsrfViewMiddleware and ALLOWED_HOSTS
for any ASGI app, as one pure ASGI middleware (the driver with the envelope's hooks).

    from bastion.hardening import envelope
    app = envelope(app)                      # settings from the environment
    app = envelope(app, settings, csrf_exempt_paths=["/api/webhooks/"])

The decision functions are public too, for code that needs the same answers
outside a request (the resolver for an audit row, the CSRF check in a test).
"""

from __future__ import annotations

from bastion._parse.origins import (
    HostError,
    Origin,
    ParsedHost,
    TrustedOrigins,
    parse_host,
    parse_origin,
    parse_url_origin,
)
from bastion.hardening._chain import DEV_HOSTS, Envelope, EnvelopeConfig, RejectHook, envelope
from bastion.hardening._csrf import SAFE_METHODS, Reason
from bastion.hardening._csrf import check as check_csrf
from bastion.hardening._headers import DEFAULT_HSTS, DEFAULT_SECURITY_HEADERS, SecurityHeaders
from bastion.hardening._hosts import AllowedHosts, HostReason
from bastion.hardening._proxy import Resolution, TrustedProxies, client_key, parse_ip

__all__ = [
    "DEFAULT_HSTS",
    "DEFAULT_SECURITY_HEADERS",
    "DEV_HOSTS",
    "SAFE_METHODS",
    "AllowedHosts",
    "Envelope",
    "EnvelopeConfig",
    "HostError",
    "HostReason",
    "Origin",
    "ParsedHost",
    "Reason",
    "RejectHook",
    "Resolution",
    "SecurityHeaders",
    "TrustedOrigins",
    "TrustedProxies",
    "check_csrf",
    "client_key",
    "envelope",
    "parse_host",
    "parse_ip",
    "parse_origin",
    "parse_url_origin",
]
