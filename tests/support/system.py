"""The Debian programs the suite drives, installed by the test run itself.

The README's test command is ``uv run pytest`` and nothing else, so a fresh
machine with only Python and uv must be able to run it as written. The Python
servers (Valkey, PostgreSQL, Caddy) come as wheels; some programs do not:
Chromium for the browser tests, wrk for the load tests, openssl for the
front-door certificates, Prometheus (with promtool) and Alertmanager's amtool
for the monitoring rules and their live test. ``tests/conftest.py`` calls :func:`ensure` once the
tests are collected: what the collected tests need and the machine lacks is
installed with apt-get when the run is root (CI, a container), and otherwise
the run stops with one line saying what to install. Only what the selected
tests need is asked for, so ``uv run pytest tests/unit`` never asks for a
browser.

The run calls :func:`ensure` once (under parallel workers, in the process that
hands out the tests), and :func:`ensure` installs under a lock file shared by
every test run on the machine: a second run started meanwhile waits for the
first one's apt-get (dpkg allows one at a time), then finds the programs there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tests.support.kinds import ROOT, under

__all__ = ["NEEDED_BY", "PACKAGES", "ROOT", "SetupError", "ensure", "missing_for", "needed_for"]

# Program on PATH -> the Debian package that provides it.
PACKAGES: dict[str, str] = {
    "chromium": "chromium",
    "wrk": "wrk",
    "openssl": "openssl",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
}

# Program -> the test paths (relative to the repository, a trailing "/" for a
# folder) that run it. tests/unit/test_system_packages.py scans the suite and
# fails when a test that runs one of these programs is not listed here.
NEEDED_BY: dict[str, tuple[str, ...]] = {
    "chromium": ("tests/e2e/",),
    "wrk": ("tests/integration/load/", "tests/integration/test_bench_harness.py"),
    "openssl": ("tests/deploy/",),
    "prometheus": ("tests/integration/monitoring/",),
    "promtool": ("tests/deploy/test_monitoring.py",),
    "amtool": ("tests/deploy/test_monitoring.py",),
}

#: Held while programs are installed, by whichever test run on this machine installs them.
INSTALL_LOCK = Path(tempfile.gettempdir()) / "bastion-tests-apt.lock"


class SetupError(RuntimeError):
    """The machine lacks a program and this run cannot install it."""


def needed_for(paths: Iterable[Path]) -> set[str]:
    """The programs the tests in ``paths`` (their files) run."""
    needed: set[str] = set()
    for path in paths:
        needed.update(program for program, prefixes in NEEDED_BY.items() if under(path, prefixes))
    return needed


def missing_for(paths: Iterable[Path]) -> list[str]:
    """The programs those tests need that are not on PATH, sorted."""
    return sorted(program for program in needed_for(paths) if shutil.which(program) is None)


def ensure(paths: Iterable[Path]) -> list[str]:
    """Install what the tests in ``paths`` need and lack; return the programs installed.

    Raises :class:`SetupError` with a one-line message when something is
    missing and this process is not root (or has no apt-get), or when apt-get
    fails; the caller stops the run with it.
    """
    paths = list(paths)
    missing = missing_for(paths)
    if not missing:
        return []
    packages = sorted({PACKAGES[program] for program in missing})
    apt_get = shutil.which("apt-get")
    if os.geteuid() != 0 or apt_get is None:
        raise SetupError(
            f"the selected tests need {', '.join(missing)}, not installed; "
            f"run as root once: apt-get install -y {' '.join(packages)}"
        )
    with _installing():
        # Another run may have installed them while this one waited for the lock.
        missing = missing_for(paths)
        if missing:
            _install(apt_get, missing)
    return missing


@contextlib.contextmanager
def _installing() -> Iterator[None]:
    """The machine-wide install lock (an flock: the kernel drops it if its holder dies)."""
    with INSTALL_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _install(apt_get: str, missing: list[str]) -> None:
    """``apt-get update`` and ``install`` of the packages that provide ``missing``."""
    packages = sorted({PACKAGES[program] for program in missing})
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in ([apt_get, "update", "-qq"], [apt_get, "install", "-y", "-qq", *packages]):
        done = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SetupError(f"{' '.join(step[1:3])} failed ({done.returncode}): {last}")
    still = [program for program in missing if shutil.which(program) is None]
    if still:
        raise SetupError(
            f"apt-get installed {' '.join(packages)} but {', '.join(still)} is still not on PATH"
        )
