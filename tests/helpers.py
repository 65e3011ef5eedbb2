"""Fakes and fixtures shared by the tests: temporary homes, subprocess runners."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


class MirrorProcess:
    """A long-running ``mirror`` command (serve, pair) started from a trio test."""

    def __init__(self, process: object, first_line: str) -> None:
        self.process = process
        self.first_line = first_line

    @property
    def json(self) -> dict[str, object]:
        import json

        data = json.loads(self.first_line)
        assert isinstance(data, dict)
        return data


async def start_mirror(home: Path, *args: str, deadline_s: float = 30) -> MirrorProcess:
    """Start ``mirror ARGS`` and return once it printed its first line."""
    import trio

    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "node.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=mirror_env(home),
        cwd=REPO,
    )
    return MirrorProcess(process, await first_line(process, f"mirror {args[0]}", deadline_s))


async def first_line(process: Any, what: str, deadline_s: float = 30) -> str:
    """The first line a started process prints (its address, usually), bounded."""
    import trio

    assert process.stdout is not None
    buffer = b""
    with trio.fail_after(deadline_s):
        while b"\n" not in buffer:
            chunk = await process.stdout.receive_some(4096)
            if not chunk:
                err = b""
                if process.stderr is not None:
                    err = await process.stderr.receive_some(4096)
                raise AssertionError(f"{what} exited early: {err.decode()!r}")
            buffer += chunk
    return buffer.split(b"\n", 1)[0].decode()


async def stop_mirror(proc: MirrorProcess, deadline_s: float = 15) -> int:
    """SIGTERM a started command and wait for it; returns its exit status."""
    import signal

    import trio

    process = proc.process
    if process.returncode is None:  # type: ignore[attr-defined]
        process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    with trio.fail_after(deadline_s):
        status: int = await process.wait()  # type: ignore[attr-defined]
    stderr = getattr(process, "stderr", None)
    if status != 0 and stderr is not None:
        with trio.move_on_after(2):
            detail = await stderr.receive_some(65536)
            print(f"mirror exited {status}: {detail.decode(errors='replace')}")
    return status
