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
import importlib.metadata
import json
import logging
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable, Generator, Sequence
from dataclasses import fields
from types import TracebackType
from typing import Any

import trio
from hypercorn.config import Config, Sockets

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


# --------------------------------------------------------------------------- hypercorn 0.18
#
# After a WebSocket upgrade, hypercorn 0.18 keeps objects that only the HTTP part
# of the connection used, and its send lock takes a scheduler turn before every
# write although the send inside it takes one anyway. ``trim_upgraded`` (set as
# RelayApp.after_accept) replaces, on each accepted connection:
#
# - TCPServer.send_lock, a trio.Lock (with a ParkingLot and an OrderedDict), by
#   ``_SendLock``: the same mutual exclusion of the app's writes and hypercorn's
#   own pongs and closes, no scheduler turn when it is free, a ParkingLot only
#   once two tasks have wanted it at once;
# - TCPServer.idle_task, a TrioSingleTask with its own lock, by one made on
#   demand: hypercorn only restarts it for the next request of a keep-alive
#   connection, and an upgraded connection has none;
# - TCPServer.protocol, a ProtocolWrapper that turns the connection into HTTP/2
#   when the request asks for it, by the H11Protocol it wraps, to which it passes
#   everything else;
# - H11Protocol.can_read, an event (with a set of waiters) waited on only while
#   h11 pauses between keep-alive requests, by one made on demand;
# - H11WSConnection.h11_connection (the request's h11 parser) by None: after the
#   upgrade only H11WSConnection.send uses it, for HTTP responses, which an
#   accepted WebSocket never sends;
# - WSStream.handshake (the parsed upgrade headers) by an object with the one
#   attribute read afterwards, ``accepted``;
# - wsproto's queue of pending events, an empty deque (a 64-slot block) that only
#   ``receive_data(None)`` fills, which hypercorn never calls, by an empty list;
# - and drops the request headers from the scope: hypercorn reads them before the
#   accept and in its access log, which the relay turns off; the relay never does.
#
# Other versions may use these objects differently, so the trim is applied only
# with the versions in TRIMMED_VERSIONS and only when every object has the
# expected type and state; otherwise the connection keeps hypercorn's stock
# behaviour. tests/test_relay_server.py checks both.

TRIMMED_VERSIONS = {"hypercorn": frozenset({"0.18.0"}), "wsproto": frozenset({"1.3.2"})}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


class _SendLock:
    """TCPServer.send_lock as hypercorn uses it (``async with`` only)."""

    __slots__ = ("held", "waiting")

    def __init__(self) -> None:
        self.held = False
        self.waiting: trio.lowlevel.ParkingLot | None = None

    async def __aenter__(self) -> None:
        if not self.held:
            self.held = True  # the shielded send inside is the scheduling point
            return
        if self.waiting is None:
            self.waiting = trio.lowlevel.ParkingLot()
        await self.waiting.park()  # woken as the new holder: ``held`` stays True

    async def __aexit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not (self.waiting and self.waiting.unpark(count=1)):
            self.held = False


class _IdleTaskOnDemand:
    """TCPServer.idle_task, made when hypercorn first restarts it (never, once upgraded)."""

    __slots__ = ("task",)

    def __init__(self) -> None:
        self.task: Any = None

    async def restart(self, task_group: Any, action: Any) -> None:
        if self.task is None:
            from hypercorn.trio.worker_context import TrioSingleTask

            self.task = TrioSingleTask()
        await self.task.restart(task_group, action)

    async def stop(self) -> None:
        if self.task is not None:
            await self.task.stop()


class _EventOnDemand:
    """H11Protocol.can_read, made when hypercorn first uses it (at the close, once upgraded)."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event: Any = None

    def _made(self) -> Any:
        if self.event is None:
            from hypercorn.trio.worker_context import EventWrapper

            self.event = EventWrapper()
        return self.event

    async def clear(self) -> None:
        await self._made().clear()

    async def wait(self) -> None:
        await self._made().wait()

    async def set(self) -> None:
        await self._made().set()

    def is_set(self) -> bool:
        return bool(self._made().is_set())


class _Accepted:
    """What WSStream reads of its Handshake once the WebSocket is accepted."""

    __slots__ = ()
    accepted = True


class _NoEvents(list[Any]):
    """wsproto Connection._events while it stays empty (a deque reserves 64 slots)."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


_ACCEPTED = _Accepted()


def _trimmer() -> Callable[[Send], bool] | None:
    """``trim_upgraded`` for the installed versions, or None where it does not apply."""
    if any(_version(name) not in versions for name, versions in TRIMMED_VERSIONS.items()):
        return None
    from collections import deque

    from hypercorn.protocol import ProtocolWrapper
    from hypercorn.protocol.h11 import H11Protocol, H11WSConnection
    from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
    from hypercorn.trio.tcp_server import TCPServer
    from hypercorn.trio.worker_context import EventWrapper, TrioSingleTask
    from wsproto.connection import Connection

    def trim_upgraded(send: Send) -> bool:
        """Trim the connection whose ASGI ``send`` this is; False if left as it was."""
        stream: Any = getattr(send, "__self__", None)
        if type(stream) is not WSStream or stream.state is not ASGIWebsocketState.CONNECTED:
            return False
        http: Any = getattr(stream.send, "__self__", None)
        tcp: Any = getattr(http, "send", None) and getattr(http.send, "__self__", None)
        try:
            expected = (
                type(http) is H11Protocol and type(http.connection) is H11WSConnection
                and type(http.can_read) is EventWrapper
                and not http.can_read._event.statistics().tasks_waiting
                and type(tcp) is TCPServer and type(tcp.protocol) is ProtocolWrapper
                and tcp.protocol.protocol is http
                and type(tcp.send_lock) is trio.Lock and not tcp.send_lock.locked()
                and type(tcp.idle_task) is TrioSingleTask and tcp.idle_task._handle is None
                and not tcp.idle_task._lock.locked()
                and type(stream.connection) is Connection
                and type(stream.connection._events) is deque and not stream.connection._events
            )
        except AttributeError:  # not quite the 0.18.0 we know
            expected = False
        if not expected:
            return False
        tcp.protocol = http
        tcp.send_lock = _SendLock()
        tcp.idle_task = _IdleTaskOnDemand()
        http.can_read = _EventOnDemand()
        http.connection.h11_connection = None
        ws: Any = stream  # stand-ins for hypercorn's and wsproto's types, hence Any
        ws.handshake = _ACCEPTED
        ws.connection._events = _NoEvents()
        ws.scope.pop("headers", None)
        return True

    return trim_upgraded


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

    def take(connection: Any) -> bool:
        now = trio.current_time()
        allowance = min(float(limits.ping_burst),
                        getattr(connection, "_mirror_pings", float(limits.ping_burst))
                        + (now - getattr(connection, "_mirror_ping_at", now))
                        * limits.max_pings_per_s)
        connection._mirror_ping_at = now
        if allowance < 1.0:
            connection._mirror_pings = allowance
            return False
        connection._mirror_pings = allowance - 1.0
        return True

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
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.send_stall_timeout_s = limits.send_stall_timeout_s
    # hypercorn refuses messages over its own limit with 1009 before buffering them;
    # one byte of slack lets the app see (and count) exactly max + 1.
    config.websocket_max_message_size = limits.max_frame_bytes + 1
    config.max_app_queue_size = L.APP_QUEUE_MESSAGES
    config.h11_max_incomplete_size = L.MAX_HTTP_HEADER_BYTES
    # HTTP/2 (h2c, prior knowledge) cannot be turned off in hypercorn; the relay
    # refuses every request over it (relay.admission), so keep each such connection
    # to one stream and heads as small as over HTTP/1.1. No ALPN h2 under TLS.
    config.h2_max_concurrent_streams = 1
    config.h2_max_header_list_size = L.MAX_HTTP_HEADER_BYTES
    config.alpn_protocols = ["http/1.1"]
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
    if isinstance(app, RelayApp) and app.after_accept is None:
        app.after_accept = _trimmer()
    if isinstance(app, RelayApp) and app.abort_transport is None:
        app.abort_transport = abort_transport
    if isinstance(app, RelayApp) and app.limit_pings is None:
        app.limit_pings = ping_limiter(app)
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
