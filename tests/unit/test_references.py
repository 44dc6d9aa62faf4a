"""Every name the library's docstrings and the README point at exists in the code.

A reference that names nothing is worse than none: it sends a reader to look
for a module that moved or a function that was renamed. So every Sphinx role
in a docstring or a ``#:`` comment of ``src/bastion`` (``:func:``, ``:class:``,
``:meth:``, ``:mod:``, ``:data:``, ``:attr:``, ``:exc:``) and every
``bastion.``-dotted name in a code span or code block of ``README.md`` is
resolved against the imported code.

How a docstring's target resolves (Sphinx's order, after dropping a leading
``~`` or ``.`` and a trailing ``()``):

1. inside a class (its docstring, its methods' docstrings and ``#:``
   comments), as a member of that class, then of each enclosing class;
2. from the module's own namespace: its first part is a name the module
   defines or imports, the rest attributes of it;
3. as an absolute path: the longest prefix that imports as a module, the rest
   attributes of it.

A member is an attribute of the class, or a field it annotates, or an
attribute its methods assign (``self.x = ...``), which ``getattr`` on the
class cannot see. A ``:mod:`` target must be a module.

The README's names are code paths, resolved by rule 3, or one of the other
dotted names bastion defines, each checked against its own source: a
deployment check ID (``bastion.W005``) that the checks registry knows, an
entry-point group bastion reads (``bastion.apps``), a logger bastion logs
on (``bastion.errors``), the name of one of bastion's own tasks
(``bastion.sessions.clean``), or a group of the shipped Prometheus rules
(``bastion.thresholds``). A dotted name inside a longer token (a file
path such as ``/srv/bastion.tar``) is not a name.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bastion import _plugins, load_settings
from bastion.deploy._checks import registry
from bastion.jobs._builtin import builtin_tasks
from bastion.ops._logs import ACCESS_LOGGER

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
README = ROOT / "README.md"

ROLE = re.compile(r":(func|class|meth|mod|data|attr|exc):`([^`]+)`")
#: A bastion name not glued to a longer token on its left (a path, another name).
README_NAME = re.compile(r"(?<![\w./\-])bastion(?:\.[A-Za-z_]\w*)+")
CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.DOTALL)
LOGGER = re.compile(r"getLogger\(\s*\"([^\"]+)\"\s*\)")
MISSING = object()


@dataclass(frozen=True)
class Reference:
    """One role in one docstring: where it is, what it names, and the classes around it."""

    module: str
    line: int
    role: str
    target: str
    classes: tuple[str, ...]  # qualified names of the enclosing classes, innermost last

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: :{self.role}:`{self.target}`"


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted((SRC / "bastion").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if "migrations" in parts:  # Alembic's scripts: run by Alembic, not importable modules
            continue
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _references(module: str, path: Path) -> Iterator[Reference]:
    source = path.read_text()
    tree = ast.parse(source)
    # Each line's enclosing classes, for docstrings and "#:" comments alike.
    classes: dict[int, tuple[str, ...]] = {}

    def visit(
        node: ast.AST, enclosing: tuple[str, ...]
    ) -> Iterator[tuple[int, str, tuple[str, ...]]]:
        if isinstance(node, ast.ClassDef):
            qualname = f"{enclosing[-1]}.{node.name}" if enclosing else node.name
            inner = (*enclosing, qualname)
            for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                classes[line] = inner
        else:
            inner = enclosing
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring is not None:
                first = node.body[0]
                yield first.lineno, docstring, inner
        for child in ast.iter_child_nodes(node):
            # A method's docstring keeps its class as the context (rule 1).
            yield from visit(child, inner)

    texts = list(visit(tree, ()))
    for number, comment in enumerate(source.splitlines(), start=1):
        if comment.lstrip().startswith("#:"):
            texts.append((number, comment, classes.get(number, ())))
    for line, text, enclosing in texts:
        for match in ROLE.finditer(text):
            target = match.group(2)
            if "<" in target:  # "title <target>"
                target = target[target.index("<") + 1 : target.rindex(">")]
            yield Reference(module, line, match.group(1), target, enclosing)


def _attribute(owner: object, name: str) -> object:
    """``owner.name``, or for a class also a field it annotates or its methods assign."""
    value = getattr(owner, name, MISSING)
    if value is not MISSING or not isinstance(owner, type):
        return value
    for klass in owner.__mro__:
        if name in vars(klass).get("__annotations__", {}):
            return name
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if re.search(rf"\bself\.{re.escape(name)}\s*[:=]", source):
            return name
    return MISSING


def _walk(owner: object, rest: list[str]) -> object:
    for name in rest:
        owner = _attribute(owner, name)
        if owner is MISSING:
            return MISSING
    return owner


def _absolute(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        return _walk(module, parts[cut:])
    return MISSING


def resolve(reference: Reference) -> object:
    target = reference.target.lstrip("~!.").removesuffix("()")
    parts = target.split(".")
    module = importlib.import_module(reference.module)
    for qualname in reversed(reference.classes):
        found = _walk(_walk(module, qualname.split(".")), parts)
        if found is not MISSING:
            return found
    found = _walk(module, parts)
    if found is not MISSING:
        return found
    return _absolute(target)


REFERENCES = [ref for module, path in _modules() for ref in _references(module, path)]


def test_the_docstrings_hold_references_to_check() -> None:
    """The scan finds the roles (a broken regex would make the next test pass on nothing)."""
    roles = {ref.role for ref in REFERENCES}
    assert len(REFERENCES) > 100
    assert {"func", "class", "meth", "mod", "data"} <= roles


def test_every_docstring_reference_names_something_that_exists() -> None:
    broken = [str(ref) for ref in REFERENCES if resolve(ref) is MISSING]
    assert broken == []


def test_every_mod_reference_names_a_module() -> None:
    wrong = [
        str(ref)
        for ref in REFERENCES
        if ref.role == "mod" and not isinstance(resolve(ref), types.ModuleType)
    ]
    assert wrong == []


def _readme_names() -> list[str]:
    names: list[str] = []
    for match in CODE.finditer(README.read_text()):
        names += README_NAME.findall(match.group(1) or match.group(2))
    return names


def _other_names() -> set[str]:
    """The dotted names bastion defines that are not code paths, each from its own source."""
    check_ids = set(registry())
    groups = {_plugins.APPS_GROUP, _plugins.CHECKS_GROUP, _plugins.TASKS_GROUP}
    loggers = {name for _, path in _modules() for name in LOGGER.findall(path.read_text())}
    tasks = {task.name for task in builtin_tasks(load_settings())}
    rules = yaml.safe_load((README.parent / "deploy" / "prometheus" / "rules.yml").read_text())
    rule_groups = {group["name"] for group in rules["groups"]}
    return check_ids | groups | loggers | {ACCESS_LOGGER} | tasks | rule_groups


def test_the_readme_names_bastion_in_code() -> None:
    names = _readme_names()
    assert "bastion.hardening.envelope" in names
    assert len(set(names)) > 20


@pytest.mark.parametrize("name", sorted(set(_readme_names())))
def test_every_bastion_name_in_the_readme_exists(name: str) -> None:
    assert name in _other_names() or _absolute(name) is not MISSING, (
        f"README.md names {name!r}, which is neither an importable path nor a name bastion defines"
    )


def test_a_name_that_is_not_there_does_not_resolve() -> None:
    """The resolver can fail: the name the issue found dangling, and a method no class has."""
    dangling = Reference("bastion.guard._core", 1, "mod", "bastion.ratelimit.headers", ())
    assert resolve(dangling) is MISSING
    in_class = Reference("bastion.ratelimit._limiter", 1, "meth", "hit", ("SignInLimiter",))
    assert resolve(in_class) is not MISSING
    assert resolve(Reference("bastion.ratelimit._limiter", 1, "meth", "hit", ())) is MISSING
