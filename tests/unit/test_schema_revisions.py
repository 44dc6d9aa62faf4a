"""bastion.db._schema keeps the revision ids so the health check needs no Alembic: in step."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from bastion.db._migrate import alembic_config
from bastion.db._schema import HEAD, REVISIONS, state_of


def test_revisions_are_the_scripts_in_order() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    walked = [script.revision for script in scripts.walk_revisions()]  # head first
    assert tuple(reversed(walked)) == REVISIONS
    assert scripts.get_heads() == [HEAD]


def test_state_of_each_version_table() -> None:
    assert state_of([]) == "missing"
    assert state_of([HEAD]) == "current"
    assert state_of([REVISIONS[0]]) == "behind"
    assert state_of(["0099"]) == "unknown"
    assert state_of([HEAD, "0099"]) == "unknown"
