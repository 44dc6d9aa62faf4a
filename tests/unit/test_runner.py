"""How the suite runs: its kinds of test are registered and documented, and load tests run alone.

The lock is tried with real processes, one per holder, as the xdist workers
hold it: each child takes the lock, says "in", and lets go when told.
"""

from __future__ import annotations

import select
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kinds import KINDS, ROOT, kinds_of
from tests.support.system import NEEDED_BY

HOLD = """\
import sys
from pathlib import Path
from tests.support.runlock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.hold(sys.argv[2])
print("in", flush=True)
sys.stdin.readline()
lock.release()
"""
#: Long enough for a child that could enter to have entered, on a loaded machine.
SETTLE = 1.0
#: How long a child that may enter gets to do it.
ENTER = 30.0


class Holder:
    """A child process holding the run lock in ``mode`` until :meth:`leave`."""

    def __init__(self, directory: Path, mode: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(directory), mode],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def entered(self, timeout: float) -> bool:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return bool(ready) and self.process.stdout.readline().strip() == "in"

    def leave(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.wait(ENTER) == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        if holder.process.poll() is None:
            holder.kill()


def _start(holders: list[Holder], directory: Path, mode: str) -> Holder:
    holder = Holder(directory, mode)
    holders.append(holder)
    return holder


def test_readers_share_the_lock(tmp_path: Path, holders: list[Holder]) -> None:
    first = _start(holders, tmp_path, "shared")
    assert first.entered(ENTER)
    second = _start(holders, tmp_path, "shared")
    assert second.entered(ENTER), "a second reader waited for the first"
    first.leave()
    second.leave()


def test_a_writer_waits_for_the_readers_and_then_holds_it_alone(
    tmp_path: Path, holders: list[Holder]
) -> None:
    reader = _start(holders, tmp_path, "shared")
    assert reader.entered(ENTER)
    writer = _start(holders, tmp_path, "exclusive")
    assert not writer.entered(SETTLE), "the writer entered beside a reader"
    reader.leave()
    assert writer.entered(ENTER)
    late = _start(holders, tmp_path, "shared")
    assert not late.entered(SETTLE), "a reader entered beside the writer"
    writer.leave()
    assert late.entered(ENTER)
    late.leave()


def test_a_waiting_writer_goes_before_readers_that_come_after_it(
    tmp_path: Path, holders: list[Holder]
) -> None:
    """The turnstile: readers that keep coming do not starve a writer."""
    reader = _start(holders, tmp_path, "shared")
    assert reader.entered(ENTER)
    writer = _start(holders, tmp_path, "exclusive")
    assert not writer.entered(SETTLE)
    newcomer = _start(holders, tmp_path, "shared")
    assert not newcomer.entered(SETTLE), "a reader slipped in past a waiting writer"
    reader.leave()
    assert writer.entered(ENTER)
    assert not newcomer.entered(SETTLE)
    writer.leave()
    assert newcomer.entered(ENTER)
    newcomer.leave()


def test_a_dead_holder_lets_go(tmp_path: Path, holders: list[Holder]) -> None:
    writer = _start(holders, tmp_path, "exclusive")
    assert writer.entered(ENTER)
    reader = _start(holders, tmp_path, "shared")
    assert not reader.entered(SETTLE)
    writer.kill()
    assert reader.entered(ENTER)
    reader.leave()


def test_every_kind_is_a_registered_marker_over_paths_that_exist() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    registered = {line.split(":", 1)[0] for line in config["ini_options"]["markers"]}
    assert set(KINDS) == registered
    for prefixes in KINDS.values():
        for prefix in prefixes:
            assert (ROOT / prefix).exists(), prefix


def test_kinds_follow_the_path() -> None:
    assert kinds_of(ROOT / "tests/e2e/sandbox/test_jobs.py") == ["browser"]
    assert kinds_of(ROOT / "tests/integration/test_bench_harness.py") == ["load", "bench"]
    assert kinds_of(ROOT / "tests/integration/load/test_throttled_cpu.py") == ["load"]
    assert kinds_of(ROOT / "tests/unit/test_runner.py") == []
    assert kinds_of(Path("/tmp/elsewhere/tests/e2e/test_x.py")) == []


def test_every_test_that_runs_wrk_is_a_load_test() -> None:
    """wrk saturates the machine: whatever runs it must run alone."""
    for prefix in NEEDED_BY["wrk"]:
        path = ROOT / prefix / "test_x.py" if prefix.endswith("/") else ROOT / prefix
        assert "load" in kinds_of(path), prefix


def test_the_readme_gives_the_inner_loop_beside_the_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## On a fresh machine", 1)[1].split("\n## ", 1)[0]
    assert "```sh\nuv run pytest\n```" in section
    inner = 'uv run pytest -m "not (load or browser or bundle or hostile or monitoring)"'
    assert inner in section
    for kind in KINDS:
        assert f"`{kind}`" in section, kind


@pytest.fixture(scope="module")
def shared_by_this_module() -> str:
    """A module-scoped fixture: what puts this module's tests in one worker group."""
    return "shared"


def test_groups_reach_the_scheduler(
    request: pytest.FixtureRequest, shared_by_this_module: str
) -> None:
    """On a worker of a ``--dist loadgroup`` run, this test's id carries its group.

    The controller schedules by the id's ``@group`` suffix and nothing else: if
    the tag does not take (pytest moved where it keeps ids once), every module
    fixture is set up again on every worker that runs one of its tests.
    """
    from tests.conftest import worker_group

    group = worker_group(request.node)
    assert group == "tests/unit/test_runner.py"
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith(f"@{group}")
    else:
        assert "@" not in request.node.nodeid
