"""The layering that docs/ARCHITECTURE.md states, checked on the source: no import cycle between
modules (imports inside functions included), and no package importing one above it."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import selftune

SRC = Path(selftune.__file__).parent

# Bottom to top. A package may import its own modules, the shared leaves and packages of a LOWER
# rank; packages of the same rank do not import each other. Keep in step with ARCHITECTURE.md.
RANKS = {
    "memory": 1,
    "ingest": 2,
    "dataset": 2,
    "export": 2,
    "training": 3,
    "engines": 3,
    "use": 4,
    "evaluation": 5,
    "improve": 5,
    "matrix": 6,
    "demo": 6,
    "server": 6,
    "cli": 7,
    "__main__": 8,
}
LEAF = 0  # every other top-level module or package: records, config, store, pii, twin, ...


def modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = ("selftune", *path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def runtime_nodes(tree: ast.AST):  # type: ignore[no-untyped-def]
    """Every node but those under `if TYPE_CHECKING:` (annotations only; never imported)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for orelse in node.orelse:
                yield orelse
                yield from runtime_nodes(orelse)
            continue
        yield node
        yield from runtime_nodes(node)


def imports(found: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the selftune modules it imports anywhere in its body, inside functions too (a
    name imported from a package counts as the submodule when there is one)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in found else base)
            for target in targets:
                if target in found and target != name:
                    graph[name].add(target)
    return graph


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "selftune"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules() -> None:
    assert cycles(imports(modules())) == []


def test_packages_import_downwards_only() -> None:
    wrong = []
    for module, targets in imports(modules()).items():
        here = top(module)
        for target in targets:
            there = top(target)
            if there == here:
                continue
            mine, theirs = RANKS.get(here, LEAF), RANKS.get(there, LEAF)
            if theirs > mine or (theirs == mine and mine != LEAF):
                wrong.append(f"{module} imports {target} ({here} {mine} -> {there} {theirs})")
    assert wrong == []


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    graph = {"selftune.a": {"selftune.b"}, "selftune.b": {"selftune.a"}, "selftune.c": set()}
    assert cycles(graph) == [["selftune.a", "selftune.b"]]
    assert RANKS["cli"] > RANKS["use"] > RANKS["engines"] > RANKS["memory"] > LEAF
