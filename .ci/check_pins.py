"""Fail when the environment holds a package .ci/constraints.txt does not pin at
the installed version: CI's install must be reproducible, transitive packages too.

Usage: python .ci/check_pins.py [CONSTRAINTS]   (run with the environment's python)
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

# pip's own tools come with every venv and are not the project's dependencies.
UNPINNED = {"pip", "setuptools", "wheel", "mirror-reflect"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[canonical(name)] = version.strip()
    return found


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ".ci/constraints.txt")
    pinned = pins(path)
    problems = []
    for dist in metadata.distributions():
        name = canonical(dist.metadata["Name"])
        if name in UNPINNED:
            continue
        if name not in pinned:
            problems.append(f"{name} {dist.version} is installed but not pinned")
        elif pinned[name] != dist.version:
            problems.append(f"{name} {dist.version} is installed, {pinned[name]} pinned")
    for problem in sorted(set(problems)):
        print(problem, file=sys.stderr)
    if problems:
        print(f"{path} does not describe this install: bash .ci/refresh-constraints, "
              "then review and commit it", file=sys.stderr)
        return 1
    print(f"all {len(pinned)} pins in {path} match; nothing unpinned installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
