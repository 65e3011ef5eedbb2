"""The import rules of DESIGN.md, checked on the source so they cannot rot."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

OURS = {"node", "crdt", "protocol", "relay", "commons_server", "serving"}

# package -> packages of ours it may import (DESIGN.md, "Layers and folders")
ALLOWED = {
    "node": {"node", "crdt", "protocol"},
    "crdt": {"crdt"},
    "protocol": {"protocol"},
    "relay": {"relay", "protocol", "serving"},
    "commons_server": {"commons_server", "node", "crdt", "protocol", "serving"},
    # ASGI serving plumbing shared by the servers: a bottom layer, nothing of ours
    "serving": {"serving"},
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
