"""Alembic environment: runs on a connection handed over by bastion.db._migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from bastion.db._models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `bastion migrate`, which provides the connection")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
