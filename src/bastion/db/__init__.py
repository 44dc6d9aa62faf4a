"""bastion.db: SQLAlchemy 2 (async) on SQLite or PostgreSQL, with Alembic migrations.

``DATABASE_URL`` takes the plain forms tools print (``sqlite:///path``,
``postgresql://user@host/db``, ``?host=/socket/dir``); the driver is chosen here.
"""

from __future__ import annotations

from bastion.db._engine import DATABASE_ERRORS, Database, DatabaseUnavailable
from bastion.db._migrate import migrate
from bastion.db._models import AuditLog, Base, JobRun, User, UserSession
from bastion.db._types import UTCDateTime, utcnow
from bastion.db._url import to_async_url

__all__ = [
    "DATABASE_ERRORS",
    "AuditLog",
    "Base",
    "Database",
    "DatabaseUnavailable",
    "JobRun",
    "UTCDateTime",
    "User",
    "UserSession",
    "migrate",
    "to_async_url",
    "utcnow",
]
