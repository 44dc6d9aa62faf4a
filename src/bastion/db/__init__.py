"""bastion.db: SQLAlchemy 2 (async) on SQLite or PostgreSQL, with Alembic migrations.

``DATABASE_URL`` takes the plain forms tools print (``sqlite:///path``,
``postgresql://user@host/db``, ``?host=/socket/dir``); the driver is chosen here.
Every table bastion creates is named ``bastion_*``, and its migration history
lives in ``bastion_alembic_version`` (:mod:`bastion.db._schema`).
"""

from __future__ import annotations

from bastion.db._engine import DATABASE_ERRORS, Database, DatabaseUnavailable
from bastion.db._migrate import migrate
from bastion.db._models import AuditLog, User, UserSession
from bastion.db._schema import Migration, MigrationReport, SchemaError, SchemaState

__all__ = [
    "DATABASE_ERRORS",
    "AuditLog",
    "Database",
    "DatabaseUnavailable",
    "Migration",
    "MigrationReport",
    "SchemaError",
    "SchemaState",
    "User",
    "UserSession",
    "migrate",
]
