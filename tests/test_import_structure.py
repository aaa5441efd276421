"""The project's import graph, read with ``ast`` (nothing is imported): no circles, and the layering
``mixedparts`` ← ``calico_baseline`` / ``leaderboard`` ← ``baselines``.

Every ``import`` statement counts, at module level and inside functions (or under ``if TYPE_CHECKING``)
alike: an import deferred into a function only postpones a circle to call time (``calico_baseline.modeling``
and ``checkpoints`` imported each other that way), the two modules still depend on each other.
Not counted: the implicit import of the parent packages (Python initialises ``a`` before ``a.b`` whoever
imports it, so a package ``__init__`` that re-exports its own sub-modules makes no circle); an import of
``a.b`` counts as an edge to ``a.b`` only, and ``from a import name`` to the module ``a.name`` when it is one,
else to the package ``a`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mixedparts", "calico_baseline", "baselines", "leaderboard")
MAY_IMPORT = {  # package -> the project packages its modules may import
    "mixedparts": {"mixedparts"},
    "calico_baseline": {"calico_baseline", "mixedparts"},
    "leaderboard": {"leaderboard", "mixedparts"},
    "baselines": {"baselines", "calico_baseline", "mixedparts"},
}


def project_modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under the packages (a package is its ``__init__``)."""
    modules = {}
    for package in packages:
        for file in sorted((root / package).rglob("*.py")):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = file
    return modules


def imported_modules(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``name`` imports anywhere in its file."""
    package = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target not in modules and "." in target:  # `import a.b.name` of a non-module name
                target = target.rsplit(".", 1)[0]
            if target in modules and target != name:
                found.add(target)
    return found


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    modules = project_modules(root, packages)
    return {name: imported_modules(name, file, modules) for name, file in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` as ``[a, b, ..., a]`` (depth-first, names in sorted order), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_names_the_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_imports_inside_functions_and_relative_ones(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("def __getattr__(name):\n    from pkg.a import A\n    return A\n")
    (package / "a.py").write_text("import pkg.sub\nA = 1\n\ndef later():\n    from pkg.sub import b\n    return b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("from . import c\n")
    (package / "sub" / "c.py").write_text("from .. import A  # a name of the package itself\n")
    graph = import_graph(tmp_path, ("pkg",))
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.sub", "pkg.sub.b"}, "pkg.sub": set(),
                     "pkg.sub.b": {"pkg.sub.c"}, "pkg.sub.c": {"pkg"}}
    assert find_cycle(graph) == ["pkg", "pkg.a", "pkg.sub.b", "pkg.sub.c", "pkg"]


def test_the_project_has_no_import_circle():
    graph = import_graph()
    assert len(graph) > 100 and "calico_baseline.checkpoints" in graph["calico_baseline.modeling"]
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_packages_import_only_the_layers_below():
    wrong = [f"{name} imports {target}" for name, targets in sorted(import_graph().items()) for target in sorted(targets)
             if target.split(".")[0] not in MAY_IMPORT[name.split(".")[0]]]
    assert wrong == []
