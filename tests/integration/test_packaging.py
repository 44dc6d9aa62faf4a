"""The library's wheel holds the library; the example app is a distribution of its own.

An adopter installs ``bastion`` and runs ``bastion check --deploy``: if the
library's wheel carried ``bastion_example`` and its entry points, that command
would report the example's ``/sandbox/*`` checks about an app that has none.
So the wheels are built here, as ``uv build`` builds them for a release, and
read: names and the entry points in their metadata.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support.servers import ROOT

GROUPS = ("bastion.apps", "bastion.checks", "bastion.tasks")


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, zipfile.ZipFile]:
    out = tmp_path_factory.mktemp("wheels")
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv is not None
    done = subprocess.run(
        [uv, "build", "--wheel", "--all-packages", "--quiet", "--out-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {path.name.split("-")[0]: zipfile.ZipFile(path) for path in out.glob("*.whl")}


def _entry_points(wheel: zipfile.ZipFile) -> dict[str, dict[str, str]]:
    names = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    for name in names:
        parser.read_string(wheel.read(name).decode())
    return {section: dict(parser[section]) for section in parser.sections()}


def test_the_workspace_builds_two_distributions(wheels: dict[str, zipfile.ZipFile]) -> None:
    assert set(wheels) == {"bastion", "bastion_example"}


def test_the_library_wheel_holds_no_example(wheels: dict[str, zipfile.ZipFile]) -> None:
    names = wheels["bastion"].namelist()
    tops = {name.split("/")[0] for name in names if not name.endswith(".dist-info/RECORD")}
    assert "bastion" in tops
    assert not any(top.startswith("bastion_example") for top in tops), sorted(tops)
    assert "bastion/db/migrations/env.py" in names  # the library's own data still ships
    # The password blocklist and its notice: checks work air-gapped, from the wheel alone.
    assert "bastion/auth/common_passwords.txt.gz" in names
    assert "bastion/auth/common_passwords.NOTICE.txt" in names
    points = _entry_points(wheels["bastion"])
    assert points == {"console_scripts": {"bastion": "bastion.cli:main"}}
    assert not set(points) & set(GROUPS)


def test_the_example_wheel_registers_the_example(wheels: dict[str, zipfile.ZipFile]) -> None:
    names = wheels["bastion_example"].namelist()
    assert not any(name.startswith("bastion/") for name in names)
    assert "bastion_example/static/app.css" in names
    assert any(name.startswith("bastion_example/templates/") for name in names)
    points = _entry_points(wheels["bastion_example"])
    assert points["bastion.apps"] == {"demo": "bastion_example:create_app"}
    assert points["bastion.checks"] == {"example": "bastion_example.checks:checks"}
    assert points["bastion.tasks"] == {"example": "bastion_example.sandbox_jobs"}
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [
        line.split(":", 1)[1].strip()
        for line in wheels["bastion_example"].read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]
    assert requires == ["bastion"]


def test_the_checkout_installs_the_example_beside_the_library() -> None:
    """``uv sync`` (the dev group) installs both, so ``uv run bastion demo`` finds its app."""
    from importlib.metadata import entry_points

    demo = [point for point in entry_points(group="bastion.apps") if point.name == "demo"]
    assert [(p.value, p.dist.name if p.dist else None) for p in demo] == [
        ("bastion_example:create_app", "bastion-example")
    ]
    assert Path(ROOT / "example" / "pyproject.toml").is_file()
