"""A hostile relay or Commons server cannot grow a node's memory with one
endless fragmented WebSocket message (httpx-ws alone joins fragments with no
limit): the node's clients end the connection once a message passes their cap.

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
from httpx_ws import WebSocketNetworkError, aconnect_ws

from node.sync.relay import MAX_RECEIVE_MESSAGE_BYTES, RelayStream, open_room
from node.sync.ws_client import bounded_session

FRAGMENT = 16 * 1024


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


async def receive_all(url: str, limit: int | None) -> list[int]:
    """Sizes of the binary messages received until the connection ends."""
    kwargs = {} if limit is None else {"session_class": bounded_session(limit)}
    sizes: list[int] = []
    async with (httpx.AsyncClient() as client,
                aconnect_ws(url + "/ws", client, keepalive_ping_interval_seconds=None,
                            **kwargs) as ws):
        try:
            while True:
                sizes.append(len(await ws.receive_bytes()))
        except WebSocketNetworkError:
            pass
    return sizes


async def test_without_the_cap_httpx_ws_joins_a_message_of_any_size() -> None:
    # The premise: this is what the cap is for.
    async with hostile([1024 * 1024]) as server:
        with trio.fail_after(30):
            async with (httpx.AsyncClient() as client,
                        aconnect_ws(server.url + "/ws", client,
                                    keepalive_ping_interval_seconds=None) as ws):
                assert len(await ws.receive_bytes()) == 1024 * 1024


async def test_a_message_over_the_cap_ends_the_connection() -> None:
    async with hostile([1024 * 1024]) as server:
        with trio.fail_after(30):
            assert await receive_all(server.url, 64 * 1024) == []


async def test_messages_up_to_the_cap_arrive_whole_and_each_is_counted_alone() -> None:
    cap = 64 * 1024
    # Three messages that together pass the cap, each within it; then one over.
    async with hostile([cap, 48 * 1024, 40 * 1024, cap + 1]) as server:
        with trio.fail_after(30):
            assert await receive_all(server.url, cap) == [cap, 48 * 1024, 40 * 1024]


def test_bounded_session_refuses_a_nonsense_cap() -> None:
    with pytest.raises(ValueError):
        bounded_session(0)
    assert bounded_session(1000) is bounded_session(1000)


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
    from node import commons as node_commons
    from node.commons_home import AuthorKeys, CommonsServer

    async with (hostile([4 * node_commons.MAX_WS_MESSAGE_BYTES]) as server,
                open_store(tmp_path / "mirror.db") as store):
        with trio.fail_after(30), pytest.raises(node_commons.CommonsUnavailable) as caught:
            await node_commons.sync_commons(
                store, CommonsServer(server.url, b"\x02" * 32), AuthorKeys(tmp_path), set())
    assert "ended the session early" in str(caught.value)
