"""A Commons server on 127.0.0.1 port 0 inside the test's trio run, and in-process CLI calls."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from commons_server.app import CommonsApp
from commons_server.hub import Hub
from commons_server.server import open_hub, serve_commons


@dataclass
class RunningServer:
    hub: Hub
    url: str
    home: Path
    scope: trio.CancelScope
    app: CommonsApp

    def stop(self) -> None:
        self.scope.cancel()


@asynccontextmanager
async def running_commons(home: Path, **options: Any) -> AsyncIterator[RunningServer]:
    async with open_hub(home, **options) as hub, trio.open_nursery() as nursery:
        app = CommonsApp(hub)
        url = await nursery.start(serve_commons, app, "127.0.0.1", 0)
        yield RunningServer(hub, url, home, nursery.cancel_scope, app)
        nursery.cancel_scope.cancel()


async def mirror(home: Path, *argv: str) -> tuple[int, str]:
    """Run one ``mirror`` command in-process; (exit status, output or error line)."""
    from node.cli.main import parse
    from node.cli.run import run
    from node.errors import MirrorError

    args = parse(["--home", str(home), *argv])
    out = io.StringIO()
    try:
        status = await run(args, out)
    except MirrorError as exc:
        return getattr(exc, "exit_status", 1), f"mirror: {exc}"
    return status, out.getvalue()
