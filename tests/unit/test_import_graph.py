"""The import graph of ``src/bastion`` and ``bench/``, read from the source (no import runs).

import-linter (``.ci/run``) enforces the layers; this test states the rules the
issue names in the terms Python itself runs imports by, so a circle hidden from
a static linter still shows:

* an import inside a function counts (it runs, only later);
* importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, so a
  package's ``__init__`` counts for every importer outside that package;
* an import under ``if TYPE_CHECKING:`` does not count (it never runs).

The rules: no circle anywhere; ``bench/`` imports nothing from ``tests/`` and
``tests/support/`` nothing from ``bench/``; ``bastion.config``, the bottom of the
house, imports only modules of bastion that import no other module of bastion.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Where each top-level package of the graph lives.
PACKAGES = {"bastion": ROOT / "src" / "bastion", "bench": ROOT / "bench"}


@dataclass(frozen=True)
class Edge:
    """One import: who runs whom, and the line that says so."""

    source: str
    target: str
    line: int


@dataclass
class Graph:
    """Modules by dotted name, and the imports between them that run."""

    modules: dict[str, Path] = field(default_factory=dict)
    edges: dict[str, list[Edge]] = field(default_factory=dict)
    #: Every dotted name each module imports, inside the graph or not.
    imported: dict[str, set[str]] = field(default_factory=dict)

    def targets(self, module: str) -> set[str]:
        return {edge.target for edge in self.edges.get(module, ())}


def _module_files(name: str, root: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(root.rglob("*.py")):
        parts = [name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _run_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: anywhere, except under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the body never runs; an else branch would
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The dotted name a (possibly relative) ``from ... import`` names."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base.pop()
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _ancestors(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts)):
        yield ".".join(parts[:end])


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def build_graph(packages: dict[str, Path] = PACKAGES) -> Graph:
    graph = Graph()
    for name, root in packages.items():
        graph.modules.update(_module_files(name, root))
    for module, path in graph.modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: list[Edge] = []
        imported: set[str] = set()

        def add(target: str, line: int, *, module: str = module, edges: list[Edge] = edges) -> None:
            # A package's __init__ runs for an importer outside it; inside, it is
            # already running (or done) when the importer's own import runs.
            for parent in _ancestors(target):
                if parent in graph.modules and not _inside(module, parent):
                    edges.append(Edge(module, parent, line))
            if target in graph.modules and not _inside(module, target):
                edges.append(Edge(module, target, line))

        for node in _run_imports(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    imported.add(alias.name)
                    add(alias.name, node.lineno)
                continue
            base = _absolute(module, is_package, node)
            imported.add(base)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in graph.modules:
                    imported.add(submodule)
                    add(submodule, node.lineno)
                else:
                    # A name defined by the package's __init__ (or a module):
                    # that module must have run, wherever the importer lives.
                    add(base, node.lineno)
                    if base in graph.modules and base != module and _inside(module, base):
                        edges.append(Edge(module, base, node.lineno))
        first: dict[str, Edge] = {}
        for edge in sorted(edges, key=lambda e: e.line):
            first.setdefault(edge.target, edge)  # one edge per target: its first line
        graph.edges[module] = list(first.values())
        graph.imported[module] = imported
    return graph


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the groups of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for start in sorted(graph.modules):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.targets(start))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.targets(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def _one_cycle(graph: Graph, group: Iterable[str]) -> list[Edge]:
    """A shortest circle through the group's first module, as the import lines that make it."""
    members = set(group)
    start = min(members)
    paths: dict[str, list[Edge]] = {start: []}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in sorted(graph.edges.get(node, ()), key=lambda e: (e.target, e.line)):
            if edge.target not in members:
                continue
            if edge.target == start:
                return [*paths[node], edge]
            if edge.target not in paths:
                paths[edge.target] = [*paths[node], edge]
                queue.append(edge.target)
    raise AssertionError(f"no circle found in {sorted(members)}")


def _where(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def _describe_cycles(graph: Graph) -> str:
    lines: list[str] = []
    for group in _strongly_connected(graph):
        cycle = _one_cycle(graph, group)
        lines.append(f"circle among {len(group)} modules: {', '.join(group)}")
        lines.extend(
            f"    {edge.source} -> {edge.target}  "
            f"({_where(graph.modules[edge.source])}:{edge.line})"
            for edge in cycle
        )
    return "\n".join(lines)


def _cycles_in(graph: Graph, prefix: str) -> Graph:
    """The part of the graph whose modules are under ``prefix``."""
    kept = {name: path for name, path in graph.modules.items() if _inside(name, prefix)}
    edges = {name: [edge for edge in graph.edges[name] if edge.target in kept] for name in kept}
    return Graph(modules=kept, edges=edges, imported={})


# --- the graph reader itself ---------------------------------------------------


def test_the_reader_counts_what_runs_and_only_that(tmp_path: Path) -> None:
    """A reader that missed function-level imports or package __init__s would pass anything."""
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from pkg.sub.leaf import X\n")
    (root / "sub" / "leaf.py").write_text("X = 1\n")
    (root / "late.py").write_text("def f():\n    from pkg import top\n")
    (root / "top.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from pkg.sub.leaf import X\n"
        "if TYPE_CHECKING:\n    from pkg import late\n"
    )
    (root / "rel.py").write_text("from .sub import leaf\nfrom . import top\n")
    graph = build_graph({"pkg": root})
    assert graph.targets("pkg.late") == {"pkg.top"}  # inside a function: counted
    assert graph.targets("pkg.top") == {
        "pkg.sub",
        "pkg.sub.leaf",
    }  # __init__ runs; no TYPE_CHECKING
    assert graph.targets("pkg.rel") == {"pkg.sub", "pkg.sub.leaf", "pkg.top"}
    assert graph.targets("pkg.sub") == {"pkg.sub.leaf"}  # its own __init__ is not an edge
    assert _strongly_connected(graph) == []


def test_the_reader_names_the_lines_of_a_circle(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("from pkg.sub.a import A\n")
    (root / "sub" / "a.py").write_text("A = 1\n")
    # b imports from the subpackage, whose __init__ ... does not import b: no circle.
    (root / "b.py").write_text("from pkg.sub import A\n")
    assert _strongly_connected(build_graph({"pkg": root})) == []
    # Now the subpackage's module imports b back, inside a function: a circle.
    (root / "sub" / "a.py").write_text("A = 1\ndef f():\n    import pkg.b\n")
    graph = build_graph({"pkg": root})
    assert _strongly_connected(graph) == [["pkg.b", "pkg.sub", "pkg.sub.a"]]
    report = _describe_cycles(graph)
    assert "pkg.b -> pkg.sub  (" in report
    assert "pkg.sub.a -> pkg.b  (" in report


# --- the rules -------------------------------------------------------------------


GRAPH = build_graph()


def test_src_has_no_import_circle() -> None:
    report = _describe_cycles(_cycles_in(GRAPH, "bastion"))
    assert not report, "import circles in src/bastion:\n" + report


def test_bench_has_no_import_circle() -> None:
    report = _describe_cycles(_cycles_in(GRAPH, "bench"))
    assert not report, "import circles in bench/:\n" + report


def test_bench_imports_nothing_from_tests() -> None:
    offenders = sorted(
        f"{module} imports {name}"
        for module, names in GRAPH.imported.items()
        if _inside(module, "bench")
        for name in names
        if _inside(name, "tests")
    )
    assert not offenders, "bench/ must not import tests/:\n" + "\n".join(offenders)


def test_tests_support_imports_nothing_from_bench() -> None:
    support = build_graph({"tests.support": ROOT / "tests" / "support"})
    offenders = sorted(
        f"{module} imports {name}"
        for module, names in support.imported.items()
        for name in names
        if _inside(name, "bench")
    )
    assert not offenders, "tests/support/ must not import bench/:\n" + "\n".join(offenders)


def test_config_imports_only_leaf_modules_of_bastion() -> None:
    """Settings are the bottom of the house: what config imports imports nothing of bastion."""
    assert "bastion.config" in GRAPH.modules
    problems = []
    for target in sorted(GRAPH.targets("bastion.config")):
        below = sorted(t for t in GRAPH.targets(target) if _inside(t, "bastion"))
        if below:
            problems.append(f"bastion.config -> {target}, which imports {', '.join(below)}")
    assert not problems, "\n".join(problems)


def test_the_graph_sees_every_module() -> None:
    """An empty or partial graph would pass every rule above."""
    assert "bastion.config" in GRAPH.modules
    assert "bastion._runtime" in GRAPH.modules
    assert any(_inside(name, "bench") for name in GRAPH.modules)
    assert GRAPH.targets("bastion._runtime")  # the owner object imports the blocks
