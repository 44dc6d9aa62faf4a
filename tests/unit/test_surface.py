"""The public surface is deliberate: what is public says so, and the apps use only that.

The rule (``docs/ARCHITECTURE.md``, "Public surface"): a module is public when
no part of its dotted path starts with ``_``; its public names are exactly its
``__all__``. Every other module is private and declares no ``__all__``. The
example app and the adoption examples import only public names, as any
adopter would.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted((SRC / "bastion").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if "migrations" in parts:  # Alembic's script directory, loaded by path
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _is_public(module: str) -> bool:
    return not any(part.startswith("_") for part in module.split("."))


def _declares_all(path: Path) -> bool:
    return any(
        isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
        for node in ast.parse(path.read_text()).body
    )


PUBLIC = [name for name, _ in _modules() if _is_public(name)]


def test_every_public_module_declares_its_names_and_has_them() -> None:
    assert "bastion" in PUBLIC
    assert "bastion.cache" in PUBLIC
    missing = []
    for name in PUBLIC:
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, f"{name} is public but declares no __all__"
        missing += [f"{name}.{attr}" for attr in exported if not hasattr(module, attr)]
    assert missing == []


def test_no_private_module_declares_an_all() -> None:
    promising = [name for name, path in _modules() if not _is_public(name) and _declares_all(path)]
    assert promising == []


def test_no_public_name_is_a_module_shadowed_by_a_function() -> None:
    """``bastion.hardening.envelope`` once named the module on disk and the function alike."""
    shadowed = []
    for name in PUBLIC:
        module = importlib.import_module(name)
        package = Path(module.__file__ or "").parent
        if Path(module.__file__ or "").name != "__init__.py":
            continue
        shadowed += [
            f"{name}.{attr}"
            for attr in module.__all__
            if (package / f"{attr}.py").exists() or (package / attr / "__init__.py").exists()
        ]
    assert shadowed == []


def _imports(path: Path) -> Iterator[tuple[str, str]]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "bastion":
                yield from ((node.module, alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (
                (alias.name, "") for alias in node.names if alias.name.startswith("bastion.")
            )


def test_the_example_app_and_the_examples_import_only_public_names() -> None:
    private = []
    for path in [*(ROOT / "example").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]:
        for module, name in _imports(path):
            if not _is_public(module) or module not in PUBLIC:
                private.append(f"{path.relative_to(ROOT)}: {module}")
            elif name and name not in importlib.import_module(module).__all__:
                private.append(f"{path.relative_to(ROOT)}: {module}.{name}")
    assert private == []
