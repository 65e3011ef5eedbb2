"""Serving an ASGI app on hypercorn's trio worker: one place for the Commons
server and the blind store (the relay keeps its own: it may import nothing
but ``protocol``)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import trio
from hypercorn.config import Config


def hypercorn_config(
    host: str,
    port: int,
    *,
    log_name: str,
    max_header_bytes: int,
    grace_s: float,
    websocket_max_bytes: int | None = None,
    app_queue: int | None = None,
) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.h11_max_incomplete_size = max_header_bytes
    config.graceful_timeout = grace_s
    config.accesslog = None  # an access log would keep addresses and timing for no need
    config.errorlog = logging.getLogger(log_name)
    config.include_server_header = False
    if websocket_max_bytes is not None:
        config.websocket_max_message_size = websocket_max_bytes
    if app_queue is not None:
        config.max_app_queue_size = app_queue
    return config


async def serve_asgi(
    app: Any,
    config: Config,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* until cancelled (or *shutdown* is set); reports the bound URL."""
    import hypercorn.trio

    trigger = shutdown.wait if shutdown is not None else None
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            functools.partial(
                hypercorn.trio.serve, app, config, mode="asgi", shutdown_trigger=trigger
            )
        )
        task_status.started(binds[0])
