"""The module graph of our packages, read from the source: who imports whom at module
level (imports inside functions and under ``if TYPE_CHECKING:`` are not edges: they
do not run when the module loads), and the circles in it."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

PACKAGES = ("node", "crdt", "protocol", "relay", "commons_server")


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _module_level_imports(body: Iterable[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module loads (not in functions or classes,
    not under TYPE_CHECKING); try/except/else and plain if-blocks included."""
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            yield stmt
        elif isinstance(stmt, ast.If):
            if not _is_type_checking(stmt.test):
                yield from _module_level_imports(stmt.body)
            yield from _module_level_imports(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, stmt.orelse, stmt.finalbody):
                yield from _module_level_imports(block)
            for handler in stmt.handlers:
                yield from _module_level_imports(handler.body)


def _resolve(name: str, known: set[str]) -> str | None:
    """The longest known module that *name* is or is inside of."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def module_graph(
    root: Path, packages: Iterable[str] = PACKAGES, *, deferred: bool = False
) -> dict[str, set[str]]:
    """module -> the modules of ours it imports at module level (with *deferred*, also
    the imports inside functions and under TYPE_CHECKING)."""
    files = {module_name(root, p): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    known = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: set[str] = set()
        statements: Iterable[ast.stmt] = (
            (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
            if deferred else _module_level_imports(tree.body))
        for stmt in statements:
            assert isinstance(stmt, ast.Import | ast.ImportFrom)
            if isinstance(stmt, ast.Import):
                targets = [a.name for a in stmt.names]
            else:
                base = stmt.module or ""
                if stmt.level:
                    anchor = name.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (stmt.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in stmt.names] + [base]
            for target in targets:
                found = _resolve(target, known)
                # a module's own packages have run before it: not an edge
                if found is not None and found != name and not name.startswith(found + "."):
                    edges.add(found)
                    # importing a.b.c runs a/__init__ and a/b/__init__ first
                    parent = found.rpartition(".")[0]
                    while parent and parent in known and parent != name:
                        if not name.startswith(parent + "."):
                            edges.add(parent)
                        parent = parent.rpartition(".")[0]
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_graph(graph: dict[str, set[str]], depth: int = 2) -> dict[str, set[str]]:
    """The same graph between packages cut at *depth* dotted names (``node.sync``);
    a module directly in ``node`` stays itself (``node.core``)."""
    def unit(m: str) -> str:
        return ".".join(m.split(".")[:depth])

    out: dict[str, set[str]] = {}
    for m, targets in graph.items():
        out.setdefault(unit(m), set()).update(unit(t) for t in targets if unit(t) != unit(m))
    return out
