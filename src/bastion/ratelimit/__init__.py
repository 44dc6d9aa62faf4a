"""bastion.ratelimit: the shared sign-in rate limiter.

    from bastion.ratelimit import SignInLimiter, rate_limit_headers

    limiter = SignInLimiter.from_settings(settings, on_event=metrics_hook)
    decision = await limiter.hit(client_ip, email)   # before checking the password
    if not decision.allowed:
        return Response(status_code=429, headers=rate_limit_headers(decision))

Attempts are counted per client IP (IPv6 by its /64) under
``SIGN_IN_RATE_LIMIT`` and per account (the normalised email) under
``SIGN_IN_ACCOUNT_RATE_LIMIT``, in Valkey when ``VALKEY_URL`` is set so every
instance shares one count, else in this process. A failing Valkey makes the
limits per-process for a while; it never makes them disappear, and never
fails or stalls a sign-in (see :mod:`bastion.ratelimit._limiter`).
"""

from __future__ import annotations

from bastion.ratelimit._decision import Decision, rate_limit_headers
from bastion.ratelimit._limiter import SignInLimiter

__all__ = [
    "Decision",
    "SignInLimiter",
    "rate_limit_headers",
]
