"""The import rules of DESIGN.md, checked on the source so they cannot rot."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.import_graph import circles, module_graph, package_graph

OURS = {"node", "crdt", "protocol", "relay", "commons_server", "serving", "mirror_tools"}

# package -> packages of ours it may import (DESIGN.md, "Layers and folders")
ALLOWED = {
    "node": {"node", "crdt", "protocol"},
    "crdt": {"crdt"},
    "protocol": {"protocol"},
    "relay": {"relay", "protocol", "serving"},
    "commons_server": {"commons_server", "node", "crdt", "protocol", "serving"},
    # ASGI serving plumbing shared by the servers: a bottom layer, nothing of ours
    "serving": {"serving"},
    "mirror_tools": {"mirror_tools", "node", "crdt", "protocol"},  # maintainers' tools
}

# protocol/ is sans-IO: no event loop, storage, sockets, clock or global randomness
PROTOCOL_FORBIDDEN = {
    "trio", "asyncio", "anyio", "sqlite3", "socket", "ssl", "selectors", "threading",
    "time", "random", "secrets", "httpx", "httpx_ws", "zeroconf", "hypercorn", "pycrdt",
}
RELAY_FORBIDDEN = {"crdt", "pycrdt", "sqlite3"}


def imports_of(path: Path, package: str) -> set[str]:
    """Top-level names of every module *path* imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside its own package
                found.add(package)
            elif node.module:
                found.add(node.module.split(".")[0])
    return found


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layers_only_import_downwards(package: str) -> None:
    offenders = []
    for path in modules(package):
        bad = (imports_of(path, package) & OURS) - ALLOWED[package]
        if bad:
            offenders.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_protocol_is_sans_io() -> None:
    offenders = []
    for path in modules("protocol"):
        bad = imports_of(path, "protocol") & PROTOCOL_FORBIDDEN
        if bad:
            offenders.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def test_relay_never_touches_documents() -> None:
    offenders = []
    for path in modules("relay"):
        bad = imports_of(path, "relay") & RELAY_FORBIDDEN
        if bad:
            offenders.append(f"{path.relative_to(REPO)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def _loaded_after_import(package: str) -> set[str]:
    code = (
        f"import sys, json; import {package}; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    return set(json.loads(out.stdout))


def test_protocol_drags_in_no_io_at_runtime() -> None:
    loaded = _loaded_after_import("protocol")
    assert not loaded & {"trio", "sqlite3", "_sqlite3", "crdt", "node", "pycrdt"}


def test_token_buckets_are_sans_io() -> None:
    """serving.rate is told the time; it reads no clock and runs no event loop."""
    bad = imports_of(REPO / "serving" / "rate.py", "serving") & PROTOCOL_FORBIDDEN
    assert not bad


def test_serving_loads_nothing_of_ours() -> None:
    loaded = _loaded_after_import("serving")
    assert not loaded & (OURS - {"serving"})


def test_crdt_does_not_load_the_node() -> None:
    loaded = _loaded_after_import("crdt")
    assert not loaded & {"node", "relay", "commons_server", "prompt_toolkit", "litellm"}


def test_the_rule_checker_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import trio\nfrom node.core import MirrorCore\nfrom . import x\n")
    assert imports_of(bad, "protocol") == {"trio", "node", "protocol"}


# --------------------------------------------------------------------------- no circles


@pytest.mark.parametrize("deferred", [False, True], ids=["at-load", "with-deferred"])
def test_no_import_circles_between_modules(deferred: bool) -> None:
    """No module imports one that imports it back, directly or around a loop: at load
    time, and counting imports deferred into functions or TYPE_CHECKING too (a
    deferred import hides the real graph, it does not cut a circle)."""
    found = circles(module_graph(REPO, sorted(ALLOWED), deferred=deferred))
    assert not found, "\n".join(" → ".join(c) for c in found)


@pytest.mark.parametrize("deferred", [False, True], ids=["at-load", "with-deferred"])
def test_no_import_circles_between_packages(deferred: bool) -> None:
    """Nor between packages (node.cli, node.repl, node.engine, node.llm, node.sync …):
    each package only builds on packages that do not build on it."""
    graph = package_graph(module_graph(REPO, sorted(ALLOWED), deferred=deferred))
    found = circles(graph)
    assert not found, "\n".join(" → ".join(c) for c in found)


def test_the_circle_checker_finds_a_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "node"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("")
    (pkg / "cli" / "main.py").write_text("from ..repl import prompt\n")
    (pkg / "repl").mkdir()
    (pkg / "repl" / "__init__.py").write_text("")
    (pkg / "repl" / "prompt.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cli import main\n")
    (pkg / "core.py").write_text("def f():\n    from .cli import main\n")
    at_load = module_graph(tmp_path, ["node"])
    assert circles(at_load) == []
    assert at_load["node.cli.main"] == {"node.repl", "node.repl.prompt"}
    deferred = module_graph(tmp_path, ["node"], deferred=True)
    assert circles(deferred) == [["node.cli.main", "node.repl.prompt"]]
    assert circles(package_graph(deferred)) == [["node.cli", "node.repl"]]


# The CLI module of the blind stores (mirror store) still drives node.sync itself:
# docs/decisions/0006-the-application-layer-and-the-node-layout.md says why.
CLI_ON_THE_SYNC_STACK = {"node.cli.store"}


def test_front_ends_call_the_application_layer() -> None:
    """The CLI and the REPL reach the node through node.app: neither imports the core,
    the engine's understanding, the sync stack or the Commons client directly."""
    below = ("node.core", "node.engine.understanding", "node.sync", "node.commons", "crdt.store")
    offenders = []
    graph = module_graph(REPO, ["node"], deferred=True)
    front_ends = [m for m in graph if m.startswith(("node.cli", "node.repl"))]
    assert "node.cli.journal" in front_ends and "node.repl.prompt" in front_ends
    for module in front_ends:
        if module not in CLI_ON_THE_SYNC_STACK:
            targets = graph[module]
            bad = sorted(t for t in targets if t.startswith(below))
            if bad:
                offenders.append(f"{module} imports {bad}")
    assert not offenders, "\n".join(offenders)


def test_imports_inside_functions_say_why() -> None:
    """An import inside a function hides an edge of the graph: it is kept only where
    start-up needs it (litellm, zeroconf, httpx-ws …), with a ``reason:`` comment on
    its line or the line above. The relay and the Commons server are outside this
    rule for now (their plumbing is being reworked beside this)."""
    offenders = []
    for package in ("node", "crdt", "mirror_tools"):
        for path in modules(package):
            lines = path.read_text(encoding="utf-8").split("\n")
            for function in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for statement in ast.walk(function):
                    if isinstance(statement, ast.Import | ast.ImportFrom):
                        here = lines[statement.lineno - 1]
                        above = lines[statement.lineno - 2]
                        if "reason:" not in here and "reason:" not in above:
                            offenders.append(f"{path.relative_to(REPO)}:{statement.lineno}")
    assert not offenders, "\n".join(offenders)
