"""``bastion migrate``: bring the database to the latest migration, and say what that took.

An operator reading a deploy log must see what changed: the tables renamed
from an older bastion's names, each revision applied, or that there was
nothing to do.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from bastion.cli._command import Command

if TYPE_CHECKING:
    from bastion.config import Settings
    from bastion.db import MigrationReport


def describe(report: MigrationReport) -> list[str]:
    """The lines ``bastion migrate`` prints for ``report``."""
    lines = []
    if report.renamed:
        names = ", ".join(f"{old} -> {new}" for old, new in report.renamed)
        lines.append(f"bastion: renamed an older bastion's tables: {names}")
        lines.append(
            f"bastion: moved revision {report.moved_revision} from alembic_version "
            "to bastion_alembic_version"
        )
    for migration in report.applied:
        lines.append(f"bastion: applied migration {migration.revision}: {migration.title}")
    if not report.applied:
        lines.append(
            f"bastion: nothing to apply, the database is at the latest migration ({report.head})"
        )
    else:
        lines.append(f"bastion: the database is at the latest migration ({report.head})")
    return lines


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from bastion.db import migrate

    report = asyncio.run(migrate(settings.DATABASE_URL))
    print("\n".join(describe(report)))
    return 0


COMMAND = Command("migrate", "apply database migrations", _run)
