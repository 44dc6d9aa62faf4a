"""``bastion migrate``: bring the database to the latest migration (``alembic upgrade head``)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from bastion.cli._command import Command

if TYPE_CHECKING:
    from bastion.config import Settings


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bastion.db import migrate

    asyncio.run(migrate(settings.DATABASE_URL))
    print("bastion: database is at the latest migration")
    return 0


COMMAND = Command("migrate", "apply database migrations", _run)
