"""bastion.auth: accounts, server-side sessions and the audited, rate-limited sign-in.

Mount ``auth_routes(service, max_age)`` in a Starlette or FastAPI app that the
envelope wraps; build the service with ``AuthService.from_settings``.
"""

from __future__ import annotations

from bastion.auth._api import (
    auth_routes,
    client_of,
    read_credentials,
    read_email,
    read_fields,
    read_second_factor,
)
from bastion.auth._cookies import (
    CLEAR_SITE_DATA,
    clear_pending_cookie,
    clear_session_cookie,
    read_pending_cookie,
    read_session_cookie,
    set_pending_cookie,
    set_session_cookie,
)
from bastion.auth._devices import Device, classify_device
from bastion.auth._emails import InvalidEmail
from bastion.auth._events import AccountEvents
from bastion.auth._passkeys import PasskeyRefused
from bastion.auth._policy import InvalidPassword, PasswordPolicy, PasswordRule, check_password
from bastion.auth._resets import ResetRefused
from bastion.auth._service import (
    AuthService,
    EmailTaken,
    EndSession,
    NotSignedIn,
    PasskeyLimited,
    PasswordChangeLimited,
    PendingGone,
    ResetLimited,
    SecondFactorOutcome,
    SecondFactorResult,
    SignInResult,
    SignUpLimited,
    TotpConflict,
    TotpState,
    WrongCode,
    WrongPassword,
)
from bastion.auth._totp import Enrolment

__all__ = [
    "CLEAR_SITE_DATA",
    "AccountEvents",
    "AuthService",
    "Device",
    "EmailTaken",
    "EndSession",
    "Enrolment",
    "InvalidEmail",
    "InvalidPassword",
    "NotSignedIn",
    "PasskeyLimited",
    "PasskeyRefused",
    "PasswordChangeLimited",
    "PasswordPolicy",
    "PasswordRule",
    "PendingGone",
    "ResetLimited",
    "ResetRefused",
    "SecondFactorOutcome",
    "SecondFactorResult",
    "SignInResult",
    "SignUpLimited",
    "TotpConflict",
    "TotpState",
    "WrongCode",
    "WrongPassword",
    "auth_routes",
    "check_password",
    "classify_device",
    "clear_pending_cookie",
    "clear_session_cookie",
    "client_of",
    "read_credentials",
    "read_email",
    "read_fields",
    "read_pending_cookie",
    "read_second_factor",
    "read_session_cookie",
    "set_pending_cookie",
    "set_session_cookie",
]
