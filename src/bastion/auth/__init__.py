"""bastion.auth: accounts, server-side sessions and the audited, rate-limited sign-in.

Mount ``auth_routes(service, max_age)`` in a Starlette or FastAPI app that the
envelope wraps; build the service with ``AuthService.from_settings``.
"""

from __future__ import annotations

from bastion.auth._api import FAILED_SIGN_IN, auth_routes, client_of, read_credentials
from bastion.auth._cookies import clear_session_cookie, read_session_cookie, set_session_cookie
from bastion.auth._emails import InvalidEmail, normalise_email
from bastion.auth._passwords import Passwords, Verification
from bastion.auth._service import (
    AuthService,
    Client,
    EmailTaken,
    FailReason,
    InvalidPassword,
    SignInResult,
    SignUpLimited,
)
from bastion.auth._sessions import COOKIE_NAME, SECURE_COOKIE_NAME, SessionPolicy, Sessions

__all__ = [
    "COOKIE_NAME",
    "FAILED_SIGN_IN",
    "SECURE_COOKIE_NAME",
    "AuthService",
    "Client",
    "EmailTaken",
    "FailReason",
    "InvalidEmail",
    "InvalidPassword",
    "Passwords",
    "SessionPolicy",
    "Sessions",
    "SignInResult",
    "SignUpLimited",
    "Verification",
    "auth_routes",
    "clear_session_cookie",
    "client_of",
    "normalise_email",
    "read_credentials",
    "read_session_cookie",
    "set_session_cookie",
]
