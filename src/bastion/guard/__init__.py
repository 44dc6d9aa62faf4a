"""bastion.guard: the sign-in envelope for any login endpoint, including ones you did not write.

    from bastion.guard import LoginGuard, LoginRoute, SignInGuard

    guard = SignInGuard(limiter, database)            # or Bastion(...).guard
    app = LoginGuard(app, guard, [LoginRoute("/auth/jwt/login")])

:class:`SignInGuard` counts each attempt per client IP and per account on
the shared limiter, refuses over the limit with no database work, and audits
failed and successful sign-ins with the client IP. :class:`LoginGuard` puts
it in front of a route whose handler you cannot edit.
"""

from __future__ import annotations

from bastion.guard._asgi import LoginGuard, LoginRoute
from bastion.guard._core import Client, FailReason, SignInGuard, rate_limited

__all__ = [
    "Client",
    "FailReason",
    "LoginGuard",
    "LoginRoute",
    "SignInGuard",
    "rate_limited",
]
