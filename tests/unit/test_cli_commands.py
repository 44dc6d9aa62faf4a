"""The console script as a package: one module per command, each importing its needs late."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import bastion.cli
from bastion.cli import COMMANDS
from bastion.cli._command import Command
from tests.support.imports import modules_loaded_by


def test_every_command_module_defines_the_command_it_is_named_after() -> None:
    helpers = {"_command", "_errors", "__main__"}
    modules = sorted(
        info.name.removeprefix("_")
        for info in pkgutil.iter_modules(bastion.cli.__path__)
        if info.name not in helpers
    )
    assert modules == sorted(command.name for command in COMMANDS)
    for name in modules:
        command = importlib.import_module(f"bastion.cli._{name}").COMMAND
        assert isinstance(command, Command)
        assert command.name == name
    assert [command.name for command in COMMANDS] == [
        "demo",
        "migrate",
        "createuser",
        "audit",
        "check",
        "worker",
        "bundle",
    ]


def test_the_parser_loads_no_command_s_dependencies() -> None:
    """`bastion check` must not pay for uvicorn, the worker or the bundle builder."""
    code = "from bastion.cli import _parser\n_parser().parse_args(['check', '--deploy'])"
    heavy = ("uvicorn", "bastion.jobs._worker", "bastion.deploy", "bastion.auth")
    assert modules_loaded_by(code, heavy) == []


def test_python_m_bastion_cli_runs_the_console_script() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "--help"],
        env={"PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command.name in result.stdout
