"""The relay's writers, driven through the ASGI interface by a fake server (no sockets).

What is checked: an idle connection holds no writer task; a lone message goes
out at once; chunks that arrive together are merged; a streaming connection's
write is held at most MERGE_HOLD_S (or until MERGE_HOLD_BYTES are queued, or a
close); a writer that fails ends its own connection only. Each test runs with
the writers in the lifespan's nursery and, without lifespan events, in a
nursery per connection. The virtual clock (autojump) makes the waits exact.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from relay import RelayApp, RelayCloseCode
from relay.app import MERGE_HOLD_BYTES, MERGE_HOLD_S
from tests.relay_attack_helpers import start_lifespan

ROOM = "ab" * 32


class FakeClient:
    """One WebSocket connection as an ASGI server presents it to the app."""

    def __init__(self) -> None:
        self.to_app, self._from_client = trio.open_memory_channel[dict[str, Any]](math.inf)
        self.sent: list[dict[str, Any]] = []
        self.fail_sends_after: int | None = None
        self._changed = trio.lowlevel.ParkingLot()
        self.to_app.send_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self._from_client.receive()

    async def send(self, message: dict[str, Any]) -> None:
        await trio.lowlevel.checkpoint()  # a real server's send is a scheduling point
        if self.fail_sends_after is not None and len(self.sent) >= self.fail_sends_after:
            raise RuntimeError("a send that fails (the fake's)")
        self.sent.append(message)
        self._changed.unpark_all()

    def chunks(self) -> list[bytes]:
        return [m["bytes"] for m in self.sent if m["type"] == "websocket.send" and "bytes" in m]

    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if m["type"] == "websocket.send" and "text" in m]

    def closed_with(self) -> int | None:
        return next((m["code"] for m in self.sent if m["type"] == "websocket.close"), None)

    async def wait_until(self, condition: Callable[[FakeClient], bool]) -> None:
        while not condition(self):
            await self._changed.park()


@asynccontextmanager
async def relay(lifespan: bool) -> AsyncIterator[tuple[RelayApp, Callable[[], Any]]]:
    """A RelayApp and a function that opens a FakeClient to ROOM."""
    app = RelayApp()
    # The clock is virtual: a test that hangs fails at once rather than never.
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            yield app, await _start(app, nursery, lifespan)
            nursery.cancel_scope.cancel()


async def _start(app: RelayApp, nursery: trio.Nursery, lifespan: bool) -> Callable[[], Any]:
    if lifespan:
        await start_lifespan(app, nursery)

    def connect() -> FakeClient:
        client = FakeClient()
        scope = {"type": "websocket", "path": "/v1/rooms/" + ROOM,
                 "client": ("127.0.0.1", 40000)}
        nursery.start_soon(app, scope, client.receive, client.send)
        return client

    return connect


async def pair(connect: Callable[[], FakeClient]) -> tuple[FakeClient, FakeClient]:
    a = connect()
    await a.wait_until(lambda c: c.texts() == ["present 0"])
    b = connect()
    await b.wait_until(lambda c: c.texts() == ["present 1"])
    await a.wait_until(lambda c: c.texts() == ["present 0", "joined 1"])
    return a, b


async def wait_no_writers(app: RelayApp) -> None:
    while app.statistics().writers:
        await trio.lowlevel.checkpoint()


async def stream_then_hold(a: FakeClient, b: FakeClient) -> None:
    """Chunks that arrive together go out merged, which marks the reader streaming."""
    for i in range(10):
        a.to_app.send_nowait({"type": "websocket.receive", "bytes": bytes([i]) * 100})
    await b.wait_until(lambda c: b"".join(c.chunks()) == b"".join(bytes([i]) * 100
                                                                  for i in range(10)))
    assert len(b.chunks()) < 10, "chunks already queued are merged"


pytestmark = pytest.mark.parametrize("lifespan", [True, False], ids=["lifespan", "no-lifespan"])


async def test_an_idle_connection_holds_no_writer(lifespan: bool, autojump_clock: Any) -> None:
    async with relay(lifespan) as (app, connect):
        a, b = await pair(connect)
        await wait_no_writers(app)
        a.to_app.send_nowait({"type": "websocket.receive", "bytes": b"hello"})
        await b.wait_until(lambda c: c.chunks() == [b"hello"])
        await wait_no_writers(app)
        assert app.statistics().connections == 2


async def test_a_lone_message_is_not_held(lifespan: bool, autojump_clock: Any) -> None:
    async with relay(lifespan) as (app, connect):
        a, b = await pair(connect)
        start = trio.current_time()
        a.to_app.send_nowait({"type": "websocket.receive", "bytes": b"now"})
        await b.wait_until(lambda c: c.chunks() == [b"now"])
        assert trio.current_time() == start


async def test_a_streaming_write_is_held_at_most_merge_hold_s(
    lifespan: bool, autojump_clock: Any,
) -> None:
    async with relay(lifespan) as (app, connect):
        a, b = await pair(connect)
        await stream_then_hold(a, b)
        written = len(b.chunks())
        start = trio.current_time()
        a.to_app.send_nowait({"type": "websocket.receive", "bytes": b"late"})
        await b.wait_until(lambda c: len(c.chunks()) == written + 1)
        assert b.chunks()[-1] == b"late"
        assert trio.current_time() - start == pytest.approx(MERGE_HOLD_S)
        # That write carried one chunk: the stream is over, nothing is held any more.
        start = trio.current_time()
        a.to_app.send_nowait({"type": "websocket.receive", "bytes": b"alone"})
        await b.wait_until(lambda c: c.chunks()[-1] == b"alone")
        assert trio.current_time() == start


async def test_a_held_write_goes_out_once_merge_hold_bytes_are_queued(
    lifespan: bool, autojump_clock: Any,
) -> None:
    async with relay(lifespan) as (app, connect):
        a, b = await pair(connect)
        await stream_then_hold(a, b)
        start = trio.current_time()
        chunk = b"x" * 4096
        for _ in range(MERGE_HOLD_BYTES // len(chunk)):
            a.to_app.send_nowait({"type": "websocket.receive", "bytes": chunk})
        await b.wait_until(lambda c: sum(map(len, c.chunks())) == 1000 + MERGE_HOLD_BYTES)
        assert trio.current_time() == start


async def test_a_close_ends_a_hold_and_the_queue_still_goes_out(
    lifespan: bool, autojump_clock: Any,
) -> None:
    async with relay(lifespan) as (app, connect):
        a, b = await pair(connect)
        await stream_then_hold(a, b)
        start = trio.current_time()
        a.to_app.send_nowait({"type": "websocket.receive", "bytes": b"last"})
        while app.statistics().queued_bytes != len(b"last"):  # queued, and held
            await trio.lowlevel.checkpoint()
        app.close_all()
        await b.wait_until(lambda c: c.closed_with() is not None)
        assert b.chunks()[-1] == b"last"
        assert b.closed_with() == RelayCloseCode.GOING_AWAY
        assert trio.current_time() == start


async def test_a_failing_writer_ends_its_own_connection_only(
    lifespan: bool, autojump_clock: Any,
) -> None:
    async with relay(lifespan) as (app, connect):
        a, b = await pair(connect)
        c = connect()  # a third member, whose sends fail from now on
        await c.wait_until(lambda c: c.texts() == ["present 2"])
        c.fail_sends_after = len(c.sent)
        a.to_app.send_nowait({"type": "websocket.receive", "bytes": b"to both"})
        await b.wait_until(lambda c: c.chunks() == [b"to both"])
        await a.wait_until(lambda c: c.texts()[-1] == "left 1")
        assert app.statistics().drops == {"internal_error": 1}
        b.to_app.send_nowait({"type": "websocket.receive", "bytes": b"still here"})
        await a.wait_until(lambda c: c.chunks() == [b"still here"])
        c.to_app.send_nowait({"type": "websocket.disconnect", "code": 1006})
        while app.statistics().connections != 2:
            await trio.lowlevel.checkpoint()
