"""bastion.db: SQLAlchemy 2 (async) on SQLite or PostgreSQL, with Alembic migrations.

``DATABASE_URL`` takes the plain forms tools print (``sqlite:///path``,
``postgresql://user@host/db``, ``?host=/socket/dir``); the driver is chosen here.
Every table bastion creates is named ``bastion_*``, and its migration history
lives in ``bastion_alembic_version`` (:mod:`bastion.db._schema`).

:func:`migrate` is loaded on first use: it brings Alembic (and, through it,
SQLAlchemy's PostgreSQL dialects and Mako), which only ``bastion migrate`` and
``bastion demo`` need, and an app that imports this package to serve requests
should not pay for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.db._engine import DATABASE_ERRORS, Database, DatabaseUnavailable
from bastion.db._models import (
    AuditLog,
    BackupCode,
    KnownDevice,
    Passkey,
    PasswordReset,
    PendingSignIn,
    TotpSecret,
    User,
    UserSession,
    WebAuthnChallenge,
)
from bastion.db._schema import Migration, MigrationReport, SchemaError, SchemaState

if TYPE_CHECKING:
    from bastion.db._migrate import migrate

__all__ = [
    "DATABASE_ERRORS",
    "AuditLog",
    "BackupCode",
    "Database",
    "DatabaseUnavailable",
    "KnownDevice",
    "Migration",
    "MigrationReport",
    "Passkey",
    "PasswordReset",
    "PendingSignIn",
    "SchemaError",
    "SchemaState",
    "TotpSecret",
    "User",
    "UserSession",
    "WebAuthnChallenge",
    "migrate",
]


def __getattr__(name: str) -> Any:
    """``bastion.db.migrate``, imported when it is first looked up."""
    if name == "migrate":
        from bastion.db._migrate import migrate  # noqa: PLC0415 - Alembic on first use

        return migrate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
