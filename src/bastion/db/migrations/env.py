"""Alembic environment: runs on a connection handed over by bastion.db._migrate.

bastion's history is kept in its own version table, so an app's Alembic
(``alembic_version``) and bastion's never read or move each other's revisions.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from bastion.db._models import Base
from bastion.db._schema import VERSION_TABLE

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `bastion migrate`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    on_version_apply=context.config.attributes.get("on_version_apply"),
)
with context.begin_transaction():
    context.run_migrations()
