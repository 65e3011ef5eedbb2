"""The local web interface started inside a test: in-process (httpx) or as `mirror ui`."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from node.app import open_mirror
from node.home import Home
from node.ui.run import run_ui
from node.ui.server import UiApp
from tests.helpers import REPO, mirror_env


@dataclass
class RunningUi:
    app: UiApp
    base: str  # http://127.0.0.1:PORT
    launch_url: str
    output: str

    async def session(self, client: httpx.AsyncClient) -> str:
        """Redeem the launch token with *client*; returns its CSRF token."""
        response = await client.get(self.launch_url)
        assert response.status_code == 303, response.text
        csrf = (await client.get(self.base + "/api/session")).json()["csrf"]
        assert isinstance(csrf, str) and csrf
        return csrf

    def change_headers(self, csrf: str) -> dict[str, str]:
        return {"X-Mirror-CSRF": csrf, "Origin": self.base}


@asynccontextmanager
async def running_ui(home: Path) -> AsyncIterator[RunningUi]:
    out = io.StringIO()
    async with open_mirror(Home(home)) as mirror, trio.open_nursery() as nursery:
        app: UiApp = await nursery.start(
            lambda task_status: run_ui(mirror, port=0, browser=False, out=out,
                                       task_status=task_status))
        launch = app.guard.launch_url()
        yield RunningUi(app, launch.split("/?", 1)[0], launch, out.getvalue())
        nursery.cancel_scope.cancel()


URL_LINE = re.compile(r"Mirror is open at (http://127\.0\.0\.1:\d+/\?token=\S+)")


class UiProcess:
    """`mirror ui --no-browser` as its own process (the way a person runs it)."""

    def __init__(self, process: subprocess.Popen[str], launch_url: str) -> None:
        self.process = process
        self.launch_url = launch_url
        self.base = launch_url.split("/?", 1)[0]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def start_ui_process(home: Path, *args: str, **env: Any) -> UiProcess:
    """Start `mirror ui --no-browser` on *home*; returns once it printed its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "ui", "--no-browser", *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=mirror_env(home, **env), cwd=REPO,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    found = URL_LINE.search(line)
    if found is None:
        process.kill()
        err = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"mirror ui printed {line!r}; stderr {err!r}")
    return UiProcess(process, found.group(1))
