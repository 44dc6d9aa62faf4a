"""bastion.db: SQLAlchemy 2 (async) on SQLite or PostgreSQL, with Alembic migrations.

``DATABASE_URL`` takes the plain forms tools print (``sqlite:///path``,
``postgresql://user@host/db``, ``?host=/socket/dir``); the driver is chosen here.
"""

from __future__ import annotations

from bastion.db._engine import DATABASE_ERRORS, Database, DatabaseUnavailable
from bastion.db._migrate import migrate
from bastion.db._models import AuditLog, User, UserSession

__all__ = [
    "DATABASE_ERRORS",
    "AuditLog",
    "Database",
    "DatabaseUnavailable",
    "User",
    "UserSession",
    "migrate",
]
