"""The README says what is true, for the things a newcomer copies first.

A command typed as written must run in a fresh checkout, where ``bastion`` is
only on PATH through ``uv run``; every setting the model reads must be in the
configuration table; the JSON API the home page invites you to try must be
documented.
"""

from __future__ import annotations

import re

from bastion.config import Settings
from tests.support.servers import ROOT

README = (ROOT / "README.md").read_text()
SHELL_BLOCKS = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


def test_every_bastion_command_a_newcomer_types_goes_through_uv_run() -> None:
    lines = [line.strip() for block in SHELL_BLOCKS for line in block.splitlines()]
    assert lines
    bare = [line for line in lines if re.match(r"(bastion|pytest|python)\b", line)]
    assert bare == []


def test_every_setting_is_in_the_configuration_table() -> None:
    table = README.split("## Configuration", 1)[1]
    missing = [name for name in Settings.model_fields if f"| `{name}` |" not in table]
    assert missing == []


def test_the_sandbox_json_api_is_documented() -> None:
    assert "/api/sandbox/cache/{key}" in README
    for word in ("PUT", "DELETE", '"ttl"', '"value"', "Origin"):
        assert word in README.split("/api/sandbox/cache/{key}", 1)[1][:1500], word


def test_the_ci_section_names_what_ci_installs() -> None:
    section = README.split("`bash .ci/run`", 1)[1][:400]
    for program in ("uv", "Chromium", "wrk", "openssl"):
        assert program in section, program
