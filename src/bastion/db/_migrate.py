"""Apply the Alembic migrations programmatically (``bastion migrate``, ``bastion demo``).

No alembic.ini is needed at run time: the script location is this package,
and the connection is handed to env.py, so migrations run on the same async
driver and URL translation as the app.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from bastion.db._engine import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


async def migrate(database_url: str) -> None:
    """Bring the database at ``database_url`` to the latest schema."""
    database = Database(database_url, timeout=30)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_upgrade)
    finally:
        await database.dispose()
