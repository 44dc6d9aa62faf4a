"""bastion.audit: the append-only security log (django-axes' access log, and more).

Rows are data, never format strings: values are stored as given and escaped
(``repr``) whenever they reach a log line, so a newline in an email cannot
forge an entry in either place.
"""

from __future__ import annotations

from bastion.audit._log import (
    PASSKEY_REFUSED,
    PASSKEY_REGISTERED,
    PASSKEY_REMOVED,
    PASSWORD_CHANGED,
    PASSWORD_RESET_COMPLETED,
    PASSWORD_RESET_REQUESTED,
    SECOND_FACTOR_DISABLED,
    SECOND_FACTOR_ENABLED,
    SECOND_FACTOR_FAILED,
    SECOND_FACTOR_SUCCEEDED,
    SESSION_REVOKED,
    SIGN_IN_BLOCKED,
    SIGN_IN_FAILED,
    SIGN_IN_NEW_DEVICE,
    SIGN_IN_RATE_LIMITED,
    SIGN_IN_SUCCEEDED,
    SIGN_OUT,
    SIGN_UP,
    AuditEntry,
    Outcome,
    count,
    recent,
    record,
    stream,
    to_json,
)

__all__ = [
    "PASSKEY_REFUSED",
    "PASSKEY_REGISTERED",
    "PASSKEY_REMOVED",
    "PASSWORD_CHANGED",
    "PASSWORD_RESET_COMPLETED",
    "PASSWORD_RESET_REQUESTED",
    "SECOND_FACTOR_DISABLED",
    "SECOND_FACTOR_ENABLED",
    "SECOND_FACTOR_FAILED",
    "SECOND_FACTOR_SUCCEEDED",
    "SESSION_REVOKED",
    "SIGN_IN_BLOCKED",
    "SIGN_IN_FAILED",
    "SIGN_IN_NEW_DEVICE",
    "SIGN_IN_RATE_LIMITED",
    "SIGN_IN_SUCCEEDED",
    "SIGN_OUT",
    "SIGN_UP",
    "AuditEntry",
    "Outcome",
    "count",
    "recent",
    "record",
    "stream",
    "to_json",
]
