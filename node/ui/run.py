"""``mirror ui``: serve the local web interface, print its URL, open the browser.

It runs beside the REPL, ``mirror serve`` and CLI calls on the same home (one store
file, many processes): what they write reaches open pages through
:func:`node.ui.push.follow_store`.
"""

from __future__ import annotations

import argparse
import functools
import logging
import webbrowser
from html import escape
from pathlib import Path
from typing import TextIO

import trio

from ..app import Mirror
from ..app.browse import follow_changes
from ..errors import MirrorError
from ..files import write_private
from .backend import UiBackend
from .push import ChangeFeed
from .security import UiGuard
from .server import UiApp, serve_ui

log = logging.getLogger("mirror.ui")

LAUNCH_FILE = "ui-open.html"


def launch_file(home: Path, url: str) -> Path:
    """A 0600 page in the 0700 home that sends the browser to *url*.

    The browser is opened on this file rather than on the URL, so the one-time token
    never appears on a command line, which other local users can read (/proc)."""
    path = home / LAUNCH_FILE
    target = escape(url, quote=True)
    write_private(path, (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta http-equiv=refresh content=\"0;url={target}\"><title>Mirror</title></head>"
        f"<body><a href=\"{target}\">Open Mirror</a></body></html>\n"
    ), durable=False)
    return path


def open_browser(home: Path, url: str) -> bool:
    try:
        return webbrowser.open(launch_file(home, url).as_uri())
    except (OSError, webbrowser.Error) as exc:
        log.info("could not open a browser: %s", exc)
        return False


async def run_ui(mirror: Mirror, *, port: int, browser: bool, out: TextIO,
                 task_status: trio.TaskStatus[UiApp] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled (Ctrl-C)."""
    feed = ChangeFeed()
    backend = UiBackend(mirror, feed.publish)
    app = UiApp(backend, UiGuard(), feed)

    def publish(kinds: list[str]) -> None:
        feed.publish({"type": "changed", "kinds": kinds})

    async with trio.open_nursery() as nursery:
        app.background = nursery
        await nursery.start(functools.partial(
            follow_changes, mirror, publish, on_change=backend.on_store_change))
        url = await nursery.start(serve_ui, app, port)
        print(f"Mirror is open at {url}", file=out)
        print("(the link works once; keep this running, Ctrl-C to stop)", file=out, flush=True)
        if browser:
            opened = await trio.to_thread.run_sync(open_browser, mirror.home.path, url)
            if not opened:
                print("no browser could be opened: open the link above", file=out, flush=True)
        task_status.started(app)


async def cmd_ui(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    try:
        await run_ui(mirror, port=args.port, browser=args.browser, out=out)
    except OSError as exc:
        raise MirrorError(f"cannot serve on 127.0.0.1:{args.port} ({exc.strerror})") from None
    return 0
