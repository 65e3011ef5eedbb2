"""Fakes and fixtures shared by the tests: temporary homes, subprocess runners."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def mirror_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for running the real ``mirror`` program against *home*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_")}
    env["MIRROR_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def run_mirror(
    home: Path, *args: str, input: str | None = None, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m node.cli ARGS`` as a separate process against *home*."""
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=mirror_env(home, **env),
        timeout=timeout,
        cwd=REPO,
        check=False,
    )


def file_fingerprint(path: Path) -> tuple[str, int, int]:
    """Content hash, size and mtime: enough to show a file was not touched."""
    data = path.read_bytes()
    st = path.stat()
    return hashlib.sha256(data).hexdigest(), st.st_size, st.st_mtime_ns
