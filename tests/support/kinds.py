"""The expensive kinds of test, named by where they live.

``tests/conftest.py`` gives every collected test the markers of its kind from
this table, so a test file never carries them by hand and a new file in one of
these places is marked the moment it exists. The markers' one-line meanings
are registered in ``pyproject.toml``; the README's inner-loop command leaves
out ``load``, ``browser``, ``bundle``, ``hostile`` and ``monitoring`` (``bench``
is a kind of ``load``).

``load`` is more than a label: a test of that kind runs with the machine to
itself (see :mod:`tests.support.runlock`), because what it asserts depends on
having the CPU. A new test that saturates the machine, pins processes to CPUs
or holds a latency bound under load belongs in ``tests/integration/load/``,
or gets its path added to ``load`` here.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = ["KINDS", "ROOT", "kinds_of", "under"]

ROOT = Path(__file__).resolve().parents[2]

# Marker -> the test paths (relative to the repository, a trailing "/" for a
# folder) whose tests carry it.
KINDS: dict[str, tuple[str, ...]] = {
    "load": (
        "tests/integration/load/",
        "tests/integration/test_bench_harness.py",
    ),
    "bench": ("tests/integration/test_bench_harness.py",),
    "browser": ("tests/e2e/",),
    "bundle": ("tests/integration/test_bundle.py",),
    "hostile": ("tests/hostile/",),
    "monitoring": ("tests/integration/monitoring/",),
}


def under(path: Path, prefixes: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or lies in one of them (a trailing "/")."""
    try:
        relative = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return False
    return any(
        relative.startswith(prefix) if prefix.endswith("/") else relative == prefix
        for prefix in prefixes
    )


def kinds_of(path: Path) -> list[str]:
    """The markers of the tests in the file at ``path``, in the order of :data:`KINDS`."""
    return [kind for kind, prefixes in KINDS.items() if under(path, prefixes)]
