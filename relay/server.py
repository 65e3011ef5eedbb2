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
import contextlib
import functools
import json
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable, Generator, Sequence
from typing import Any

import trio
from hypercorn.config import Config, Sockets

from serving import config as serving_config
from serving import hypercorn_trim
from serving.rate import Rate, TokenBucket

from . import limits as L
from .app import RelayApp, Send
from .limits import RelayCloseCode, RelayLimits

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


# --------------------------------------------------------------------------- resets


def abort_transport(send: Send) -> bool:
    """Reset the TCP connection under the WebSocket whose ASGI ``send`` this is.

    hypercorn writes to its socket in a shielded scope and offers an application no
    way to drop a connection: a writer blocked on a client that reads nothing, and a
    client that never answers a close, would hold their connection (and the task
    that would deliver ``websocket.disconnect``) until the kernel gives up. Closing
    the socket wakes every task blocked on it with ClosedResourceError, which
    hypercorn handles as the connection's end; SO_LINGER 0 makes the close a reset
    that discards what is still unsent. Found through the same objects as the trim
    (``send`` is a WSStream's, whose ``send`` is its protocol's, whose ``send`` is
    the TCPServer's); False when they are not what this expects.
    """
    from hypercorn.trio.tcp_server import TCPServer

    stream: Any = getattr(send, "__self__", None)
    http: Any = getattr(getattr(stream, "send", None), "__self__", None)
    tcp: Any = getattr(getattr(http, "send", None), "__self__", None)
    if not isinstance(tcp, TCPServer):
        return False
    transport: Any = getattr(tcp, "stream", None)
    transport = getattr(transport, "transport_stream", transport)  # under TLS
    sock = getattr(transport, "socket", None)
    if not isinstance(sock, trio.socket.SocketType):
        return False
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return True


# --------------------------------------------------------------------------- pings


def ping_limiter(app: RelayApp) -> Callable[[Send], bool]:
    """``RelayApp.limit_pings`` for *app*: a token bucket on each connection's pings.

    hypercorn answers every ping itself and never shows one to the application, so
    without this a client makes the relay parse and answer pings as fast as it
    likes. The limit lives on wsproto's Connection of the WebSocket (its class is
    swapped for a subclass: no memory per connection until it pings): pings and
    unsolicited pongs each take a token; one over the limit is not answered and
    the connection is closed with RATE_LIMITED, the way hypercorn closes when a
    client asks to (close frame with the code, then the app's disconnect).
    """
    from wsproto.connection import Connection, ConnectionState
    from wsproto.events import CloseConnection, Event, Ping, Pong

    limits = app.limits

    rate = Rate(limits.max_pings_per_s, float(limits.ping_burst))

    def take(connection: Any) -> bool:
        now = trio.current_time()
        bucket = getattr(connection, "_mirror_pings", None)
        if bucket is None:  # made at the first ping: nothing per connection before
            bucket = connection._mirror_pings = TokenBucket(rate, now)
        return bool(bucket.take(now))

    class PingLimitedConnection(Connection):
        __slots__ = ()

        def events(self) -> Generator[Event]:
            for event in Connection.events(self):
                if isinstance(event, Ping | Pong) and not take(self):
                    if self.state is ConnectionState.OPEN:
                        app.count_drop(RelayCloseCode.RATE_LIMITED)
                        log.info("closed a connection: %s pings", RelayCloseCode.RATE_LIMITED.name)
                        self._state = ConnectionState.REMOTE_CLOSING
                        yield CloseConnection(code=int(RelayCloseCode.RATE_LIMITED),
                                              reason="too many pings")
                        return
                    continue  # closing already: not answered
                yield event

    def limit_pings(send: Send) -> bool:
        stream: Any = getattr(send, "__self__", None)
        connection = getattr(stream, "connection", None)
        if type(connection) is not Connection:
            return False
        connection.__class__ = PingLimitedConnection
        return True

    return limit_pings


def hypercorn_config(host: str, port: int, limits: RelayLimits) -> Config:
    config = _RelayConfig()
    config.send_stall_timeout_s = limits.send_stall_timeout_s
    # hypercorn refuses messages over its own limit with 1009 before buffering them;
    # one byte of slack lets the app see (and count) exactly max + 1. HTTP/2 is
    # refused by relay.admission; http11_only keeps such a connection small.
    return serving_config.hypercorn_config(
        host, port, log_name="mirror.relay.http", max_header_bytes=L.MAX_HTTP_HEADER_BYTES,
        grace_s=L.SHUTDOWN_GRACE_S, websocket_max_bytes=limits.max_frame_bytes + 1,
        app_queue_messages=L.APP_QUEUE_MESSAGES, http11_only=True, config=config,
    )


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
    config = hypercorn_config(host, port, app.limits)
    if isinstance(app, RelayApp) and app.after_accept is None:
        app.after_accept = hypercorn_trim.trimmer()
    if isinstance(app, RelayApp) and app.abort_transport is None:
        app.abort_transport = abort_transport
    if isinstance(app, RelayApp) and app.limit_pings is None:
        app.limit_pings = ping_limiter(app)
    await serving_config.serve_asgi(app, config, shutdown=shutdown, task_status=task_status)


# --------------------------------------------------------------------------- command


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
    serving_config.add_limit_flags(parser, RelayLimits, environ, env_prefix=ENV_PREFIX)
    args = parser.parse_args(argv)
    try:
        args.limits = serving_config.limits_from_flags(args, RelayLimits)
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
        # Each connection still open after the grace is reset, so this wait ends
        # soon after it whatever the clients do.
        app.close_all(grace_s=L.SHUTDOWN_GRACE_S)
        with trio.move_on_after(2 * L.SHUTDOWN_GRACE_S):
            await app.wait_no_connections()
        left = app.statistics().connections
        if left:
            log.warning("stopping with %d connections still open", left)
        else:
            log.info("every connection closed (%d reset)", app.statistics().aborted)
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
