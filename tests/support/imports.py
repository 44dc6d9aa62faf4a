"""What a piece of code imports, seen from a fresh interpreter.

Laziness is a promise about ``sys.modules``, which the test process itself has
long since filled; only a new interpreter shows what one call really loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys

__all__ = ["modules_loaded_by"]


def modules_loaded_by(code: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules under ``prefixes`` in ``sys.modules`` after ``code`` runs in a new Python."""
    probe = (
        f"import sys\n{code}\nprint(sorted(m for m in sys.modules if m.startswith({prefixes!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = ast.literal_eval(result.stdout.strip())
    return loaded
