"""A hostile relay or Commons server cannot grow a node's memory with one
endless fragmented WebSocket message: httpx-ws (0.10 and later) joins the
fragments of a message only up to ``max_message_size_bytes`` and ends the
connection past it. The node's clients pass their own caps (256 KiB relay,
2 MiB Commons) rather than the library's 64 KiB default.

The hostile server here is a bare wsproto server on 127.0.0.1 port 0 that
sends one message of ``total`` bytes in small fragments, then its final
fragment: without the cap the client would receive it whole.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
import wsproto
import wsproto.events
from httpx_ws import WebSocketDisconnect, WebSocketNetworkError, aconnect_ws
from wsproto.frame_protocol import CloseReason

from node.sync.relay import MAX_RECEIVE_MESSAGE_BYTES, RelayStream, open_room

FRAGMENT = 16 * 1024
MESSAGE_TOO_BIG = CloseReason.MESSAGE_TOO_BIG


class HostileServer:
    """Accepts any WebSocket upgrade, sends ``preamble`` text messages, then
    binary messages of the given sizes, each in FRAGMENT-byte fragments."""

    def __init__(self, sizes: list[int], preamble: tuple[str, ...] = ()) -> None:
        self.sizes = sizes
        self.preamble = preamble
        self.connections = 0
        self.port = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                ws.receive_data(data)
                if any(isinstance(e, wsproto.events.Request) for e in ws.events()):
                    break
            await stream.send_all(ws.send(wsproto.events.AcceptConnection()))
            for text in self.preamble:
                await stream.send_all(ws.send(wsproto.events.TextMessage(text)))
            for size in self.sizes:
                sent = 0
                while sent < size:
                    part = min(FRAGMENT, size - sent)
                    sent += part
                    await stream.send_all(ws.send(wsproto.events.BytesMessage(
                        b"\x00" * part, message_finished=sent == size)))
            # Then wait for the client to go; it must not wait for us.
            while await stream.receive_some(65536):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def hostile(sizes: list[int], preamble: tuple[str, ...] = ()) -> AsyncIterator[HostileServer]:
    server = HostileServer(sizes, preamble)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


async def receive_all(url: str, limit: int) -> tuple[list[int], int | None]:
    """Sizes of the binary messages received until the connection ends, and the
    close code it ended with (None for a network error)."""
    sizes: list[int] = []
    async with (httpx.AsyncClient() as client,
                aconnect_ws(url + "/ws", client, keepalive_ping_interval_seconds=None,
                            max_message_size_bytes=limit) as ws):
        try:
            while True:
                sizes.append(len(await ws.receive_bytes()))
        except WebSocketDisconnect as exc:
            return sizes, exc.code
        except WebSocketNetworkError:
            return sizes, None


async def test_a_message_over_the_cap_ends_the_connection() -> None:
    async with hostile([1024 * 1024]) as server:
        with trio.fail_after(30):
            assert await receive_all(server.url, 64 * 1024) == ([], MESSAGE_TOO_BIG)


async def test_messages_up_to_the_cap_arrive_whole_and_each_is_counted_alone() -> None:
    cap = 64 * 1024
    # Three messages that together pass the cap, each within it; then one over.
    async with hostile([cap, 48 * 1024, 40 * 1024, cap + 1]) as server:
        with trio.fail_after(30):
            assert await receive_all(server.url, cap) == (
                [cap, 48 * 1024, 40 * 1024], MESSAGE_TOO_BIG)


async def test_the_relay_client_takes_messages_up_to_its_own_cap_not_the_library_default(
) -> None:
    # The relay merges queued chunks into messages of up to 256 KiB: a client left on
    # httpx-ws's 64 KiB default would drop every busy session.
    received = bytearray()

    size = MAX_RECEIVE_MESSAGE_BYTES

    async def on_session(stream: RelayStream) -> None:
        while len(received) < size and (data := await stream.receive_some()):
            received.extend(data)

    assert size > 64 * 1024
    async with hostile([size], ("present 1",)) as server:
        with trio.fail_after(30):
            async with open_room([server.url], b"\x01" * 32) as connection:
                await connection.serve(on_session)
    assert len(received) == size
    assert connection.stats.messages_in == 1


async def test_the_relay_client_drops_a_relay_that_sends_an_oversized_message() -> None:
    # "present 1" makes the node start a session; then the relay sends one
    # message four times the node's cap. The session must see only the end of
    # the stream, never those bytes.
    received = bytearray()
    sessions = 0

    async def on_session(stream: RelayStream) -> None:
        nonlocal sessions
        sessions += 1
        while data := await stream.receive_some():
            received.extend(data)

    async with hostile([4 * MAX_RECEIVE_MESSAGE_BYTES], ("present 1",)) as server:
        with trio.fail_after(30):
            async with open_room([server.url], b"\x01" * 32) as connection:
                await connection.serve(on_session)
    assert server.connections == 1
    assert sessions == 1
    assert bytes(received) == b""
    assert connection.stats.messages_in == 0


async def test_the_commons_client_drops_a_server_that_sends_an_oversized_message(
        tmp_path: Path) -> None:
    from crdt import open_store
    from node.commons import sync as node_commons
    from node.commons.home import AuthorKeys, CommonsServer

    async with (hostile([4 * node_commons.MAX_WS_MESSAGE_BYTES]) as server,
                open_store(tmp_path / "mirror.db") as store):
        with trio.fail_after(30), pytest.raises(node_commons.CommonsUnavailable) as caught:
            await node_commons.sync_commons(
                store, CommonsServer(server.url, b"\x02" * 32), AuthorKeys(tmp_path), set())
    assert "ended the session early" in str(caught.value)


async def test_the_commons_client_takes_messages_up_to_its_own_cap_not_the_library_default(
        tmp_path: Path) -> None:
    # A message within the Commons cap reaches the protocol layer, which judges
    # its bytes (zeros are no valid frame): the session fails there, not at the
    # WebSocket level with "ended the session early".
    from crdt import open_store
    from node.commons import sync as node_commons
    from node.commons.home import AuthorKeys, CommonsServer

    size = node_commons.MAX_WS_MESSAGE_BYTES
    async with hostile([size]) as server, open_store(tmp_path / "mirror.db") as store:
        with trio.fail_after(30), pytest.raises(node_commons.CommonsRefused) as caught:
            await node_commons.sync_commons(
                store, CommonsServer(server.url, b"\x02" * 32), AuthorKeys(tmp_path), set())
    assert "protocol version" in str(caught.value)
