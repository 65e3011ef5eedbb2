"""Serving the relay with hypercorn's trio worker, and the ``mirror-relay`` command.

``serve_relay`` is what tests and the command use: it binds, sets the socket
options that bound a stuck write (TCP_USER_TIMEOUT) and notice vanished peers
(TCP keepalive) on the listening sockets (accepted sockets inherit them), and
reports the bound URL through ``task_status``.

Every flag has an environment variable: ``--max-frame-bytes`` is
``MIRROR_RELAY_MAX_FRAME_BYTES``; host and port are ``MIRROR_RELAY_HOST`` and
``MIRROR_RELAY_PORT``. Flags win over the environment.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import trio
from hypercorn.config import Config, Sockets

from . import limits as L
from .app import RelayApp
from .limits import RelayLimits

log = logging.getLogger("mirror.relay")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ENV_PREFIX = "MIRROR_RELAY_"


class _RelayConfig(Config):
    """hypercorn's Config whose listening sockets carry our TCP options."""

    send_stall_timeout_s: float = L.SEND_STALL_TIMEOUT_S

    def create_sockets(self) -> Sockets:
        sockets: Sockets = super().create_sockets()
        for sock in sockets.insecure_sockets:
            _tune(sock, self.send_stall_timeout_s)
        return sockets


def _tune(sock: socket.socket, stall_timeout_s: float) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_USER_TIMEOUT", int(stall_timeout_s * 1000)),
        ("TCP_KEEPIDLE", L.KEEPALIVE_IDLE_S),
        ("TCP_KEEPINTVL", L.KEEPALIVE_INTERVAL_S),
        ("TCP_KEEPCNT", L.KEEPALIVE_PROBES),
    ):
        option = getattr(socket, name, None)
        if option is not None:  # Linux has them all; elsewhere keepalive defaults apply
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def hypercorn_config(host: str, port: int, limits: RelayLimits) -> Config:
    config = _RelayConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.send_stall_timeout_s = limits.send_stall_timeout_s
    # hypercorn refuses messages over its own limit with 1009 before buffering them;
    # one byte of slack lets the app see (and count) exactly max + 1.
    config.websocket_max_message_size = limits.max_frame_bytes + 1
    config.max_app_queue_size = L.APP_QUEUE_MESSAGES
    config.h11_max_incomplete_size = L.MAX_HTTP_HEADER_BYTES
    config.graceful_timeout = L.SHUTDOWN_GRACE_S
    config.accesslog = None
    config.errorlog = logging.getLogger("mirror.relay.http")
    config.include_server_header = False
    return config


async def serve_relay(
    app: RelayApp,
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* until cancelled (or *shutdown* is set, then gracefully).

    ``await nursery.start(serve_relay, app, "127.0.0.1", 0)`` returns the bound
    ``http://host:port`` URL.
    """
    import hypercorn.trio

    config = hypercorn_config(host, port, app.limits)
    trigger = shutdown.wait if shutdown is not None else None
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            functools.partial(
                hypercorn.trio.serve, app, config,  # type: ignore[arg-type]
                mode="asgi", shutdown_trigger=trigger,
            )
        )
        task_status.started(binds[0])


# --------------------------------------------------------------------------- command


def _limit_fields() -> list[tuple[str, type, Any]]:
    defaults = RelayLimits()
    return [(f.name, type(getattr(defaults, f.name)), getattr(defaults, f.name))
            for f in fields(RelayLimits)]


def parse_args(argv: Sequence[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mirror-relay",
        description="Mirror's stateless relay: forwards encrypted frames between the "
        "connections of a room and stores nothing.",
        epilog="Every option can also be set in the environment: --max-frame-bytes is "
        "MIRROR_RELAY_MAX_FRAME_BYTES, --host is MIRROR_RELAY_HOST, and so on.",
    )
    parser.add_argument("--host", default=environ.get(ENV_PREFIX + "HOST", DEFAULT_HOST),
                        help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int,
                        default=environ.get(ENV_PREFIX + "PORT", str(DEFAULT_PORT)),
                        help=f"port to listen on; 0 picks a free one (default {DEFAULT_PORT})")
    parser.add_argument("--json", action="store_true",
                        help='print {"url": ...} as the first line once listening')
    parser.add_argument("--log-level", default=environ.get(ENV_PREFIX + "LOG_LEVEL", "INFO"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    for name, kind, default in _limit_fields():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, type=kind, dest=name,
                            default=environ.get(ENV_PREFIX + name.upper(), default),
                            help=f"(default {default})")
    args = parser.parse_args(argv)
    try:
        values = {name: kind(getattr(args, name)) for name, kind, _ in _limit_fields()}
        args.limits = RelayLimits(**values)
        args.port = int(args.port)
        if not 0 <= args.port <= 65535:
            raise ValueError(f"port must be 0-65535 (got {args.port})")
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def run_relay(args: argparse.Namespace) -> None:
    app = RelayApp(args.limits)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(
            functools.partial(serve_relay, app, args.host, args.port, shutdown=shutdown)
        )
        if args.json:
            print(json.dumps({"url": url}), flush=True)
        else:
            print(f"mirror-relay listening on {url}", flush=True)
        log.info("listening on %s", url)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                break
        log.info("shutting down: closing %d connections", app.statistics().connections)
        app.close_all()
        with trio.move_on_after(L.SHUTDOWN_GRACE_S):
            await app.wait_no_connections()
        shutdown.set()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, dict(os.environ))
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        trio.run(run_relay, args)
    except OSError as exc:
        print(f"mirror-relay: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
