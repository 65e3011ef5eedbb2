"""Raw WebSocket clients for attacking the relay: they do exactly what a test says,
including never reading, flooding, pinging, and resetting the connection.

Built on wsproto over trio sockets with a small receive buffer, so that a client
that does not read stops the relay's writes to it quickly.
"""

from __future__ import annotations

import math
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import BytesMessage, CloseConnection, Ping, Request

from relay import RelayApp, RelayLimits, serve_relay

SMALL_RCVBUF = 4096


class RawClient:
    """One WebSocket connection to the relay, driven by hand."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.CLIENT)

    @classmethod
    async def connect(cls, host: str, port: int, path: str, *,
                      rcvbuf: int = SMALL_RCVBUF, family: int = socket.AF_INET,
                      source: str | None = None) -> RawClient:
        """Open *path* and complete the upgrade (reads only the response head)."""
        sock = trio.socket.socket(family)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source is not None:
            await sock.bind((source, 0))
        await sock.connect((host, port))
        client = cls(sock)
        await client.send_raw(client.ws.send(Request(host=host, target=path)))
        head = b""
        while b"\r\n\r\n" not in head:
            byte = await sock.recv(1)
            if not byte:
                raise ConnectionError(f"the relay hung up during the upgrade: {head!r}")
            head += byte
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"upgrade refused: {head.splitlines()[0]!r}")
        client.ws.receive_data(head)
        list(client.ws.events())  # the AcceptConnection
        return client

    async def send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[await self.sock.send(view):]

    async def send_bytes(self, data: bytes) -> None:
        await self.send_raw(self.ws.send(BytesMessage(data=data)))

    async def ping(self, payload: bytes = b"") -> None:
        await self.send_raw(self.ws.send(Ping(payload=payload)))

    async def close_frame(self, code: int = 1000) -> None:
        """Send a close frame (and keep the socket open)."""
        await self.send_raw(self.ws.send(CloseConnection(code=code)))

    async def receive_until(self, token: bytes, limit_bytes: int = 1 << 20) -> bytes:
        """Read binary messages until their bytes contain *token* (bounded)."""
        got = b""
        while token not in got and len(got) < limit_bytes:
            data = await self.sock.recv(65536)
            if not data:
                break
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, BytesMessage):
                    got += bytes(event.data)
        return got

    def reset(self) -> None:
        """Close with RST (SO_LINGER 0): what a client that crashes or resets does."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


async def flood(client: RawClient, message_bytes: int, count: int) -> None:
    """Send *count* messages of *message_bytes* without reading (bounded); stop quietly
    once the connection is gone."""
    message = os.urandom(message_bytes)
    try:
        for _ in range(count):
            await client.send_bytes(message)
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


def open_socket_fds() -> int:
    """Socket file descriptors this process holds (the relay runs in the test's process)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


@asynccontextmanager
async def running_relay(limits: RelayLimits | None = None) -> AsyncIterator[
        tuple[RelayApp, str, int]]:
    """The relay served by hypercorn on 127.0.0.1 port 0: ``(app, host, port)``."""
    app = RelayApp(limits)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_relay, app, "127.0.0.1", 0)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield app, host, int(port)
        nursery.cancel_scope.cancel()


async def start_lifespan(app: RelayApp, nursery: trio.Nursery) -> None:
    """Run *app*'s ASGI lifespan in *nursery* (its writers' nursery) until cancelled."""
    to_app, from_server = trio.open_memory_channel[dict[str, Any]](math.inf)
    started = trio.Event()

    async def lifespan_send(message: dict[str, Any]) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    to_app.send_nowait({"type": "lifespan.startup"})
    nursery.start_soon(app, {"type": "lifespan"}, from_server.receive, lifespan_send)
    await started.wait()
