"""hypercorn 0.18's upgraded WebSockets, trimmed: per connection, the objects only
the HTTP part of a connection used are dropped or made on demand.

Applied only with the exact versions in ``TRIMMED_VERSIONS`` and only when every
object has the expected type and state; otherwise a connection keeps hypercorn's
stock behaviour. The relay sets :func:`trimmer`'s result as its ``after_accept``.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable, MutableMapping
from types import TracebackType
from typing import Any

import trio

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# # After a WebSocket upgrade, hypercorn 0.18 keeps objects that only the HTTP part
# of the connection used, and its send lock takes a scheduler turn before every
# write although the send inside it takes one anyway. ``trim_upgraded`` (set as
# the relay's after_accept) replaces, on each accepted connection:
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


def trimmer() -> Callable[[Send], bool] | None:
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
