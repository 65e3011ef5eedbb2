"""The relay's deadlines on the virtual clock (issue 15 item 1), through the ASGI
interface with a fake server that behaves like hypercorn where it matters:

- the server's queue of received messages for the app holds 8 (``max_app_queue_size``)
  and the server's reader waits while it is full, also to report a disconnect;
- a send to a client that reads nothing blocks, shielded from cancellation, until
  the connection is reset;
- a reset (the relay's ``abort_transport`` hook) wakes that send and queues
  ``websocket.disconnect``.

So the deadlock of the issue can happen here, and the clock is exact: a reader over
its queue limit is closed ``slow_reader_timeout_s`` after it went over, and a closed
connection is gone ``close_grace_s`` later at the latest, whatever its client does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from relay import RelayApp, RelayCloseCode, RelayLimits
from tests.relay_attack_helpers import start_lifespan
from tests.sync_helpers import wait_for

ROOM = "ab" * 32
APP_QUEUE = 8
LIMITS = RelayLimits(slow_reader_timeout_s=10.0, close_grace_s=5.0,
                     max_frames_per_s=1e6, frame_burst=1_000_000)
MESSAGE = b"m" * 200 * 1024
KERNEL_GIVES_UP_S = 3_600.0
"""When a blocked send fails without a reset (the kernel's timeouts): far beyond
every deadline of the relay, so only a relay without them ever gets there."""


class Client:
    """One connection as hypercorn presents it to the app (see the module docstring)."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.to_app, self._from_client = trio.open_memory_channel[dict[str, Any]](APP_QUEUE)
        self.reads = True
        """False: the client reads nothing, so every send blocks until a reset."""
        self.was_reset = trio.Event()
        self.gone = False  # the server has reported the disconnect (or the client left)
        self.sent: list[dict[str, Any]] = []
        self.to_app.send_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self._from_client.receive()

    async def send(self, message: dict[str, Any]) -> None:
        if self.gone or self.was_reset.is_set():
            return  # hypercorn drops what the app sends after the end
        if not self.reads:
            with trio.CancelScope(shield=True), trio.move_on_after(KERNEL_GIVES_UP_S):
                await self.was_reset.wait()
            self.reset()
            return
        await trio.lowlevel.checkpoint()
        self.sent.append(message)

    def reset(self) -> bool:
        """The relay's abort_transport: the socket is closed, the server reports it."""
        if not self.was_reset.is_set():
            self.was_reset.set()
            self._nursery.start_soon(self._report_gone)
        return True

    async def _report_gone(self) -> None:
        await self.to_app.send({"type": "websocket.disconnect", "code": 1006})
        self.gone = True

    async def flood(self, count: int) -> None:
        """Send *count* messages as fast as the server takes them (bounded)."""
        for _ in range(count):
            if self.was_reset.is_set():
                return
            await self.to_app.send({"type": "websocket.receive", "bytes": MESSAGE})

    async def close(self) -> None:
        """The client's close frame arrived: the server reports the disconnect."""
        await self.to_app.send({"type": "websocket.disconnect", "code": 1000})
        self.gone = True

    def closed_with(self) -> int | None:
        return next((m["code"] for m in self.sent if m["type"] == "websocket.close"), None)


@asynccontextmanager
async def relay(lifespan: bool) -> AsyncIterator[tuple[RelayApp, Callable[[], Client]]]:
    app = RelayApp(LIMITS)
    app.abort_transport = lambda send: send.__self__.reset()
    with trio.fail_after(2 * KERNEL_GIVES_UP_S):  # virtual seconds: a hang fails at once
        async with trio.open_nursery() as nursery:
            if lifespan:
                await start_lifespan(app, nursery)

            def connect() -> Client:
                client = Client(nursery)
                scope = {"type": "websocket", "path": "/v1/rooms/" + ROOM,
                         "client": ("127.0.0.1", 40000)}
                nursery.start_soon(app, scope, client.receive, client.send)
                return client

            yield app, connect
            nursery.cancel_scope.cancel()


async def until(condition: Callable[[], bool]) -> None:
    await wait_for(condition, 2 * KERNEL_GIVES_UP_S)  # virtual time


pytestmark = pytest.mark.parametrize("lifespan", [True, False], ids=["lifespan", "no-lifespan"])


async def test_two_flooders_that_read_nothing_are_gone_by_the_deadline_plus_the_grace(
    lifespan: bool, autojump_clock: Any,
) -> None:
    """The issue's attack: both send 200 KiB messages and read nothing, then do
    nothing at all (no reset, no close)."""
    async with relay(lifespan) as (app, connect):
        a, b = connect(), connect()
        await until(lambda: app.statistics().connections == 2)
        a.reads = b.reads = False
        start = trio.current_time()
        async with trio.open_nursery() as floods:
            floods.start_soon(a.flood, 1_000)
            floods.start_soon(b.flood, 1_000)
            await until(lambda: app.statistics().connections == 0)
            gone = trio.current_time() - start
        # The first 200 KiB message sends each queue over its 1 MiB limit within
        # a few messages: closed as too slow 10 s later, reset 5 s after that.
        assert gone <= LIMITS.slow_reader_timeout_s + LIMITS.close_grace_s + 0.1
        stats = app.statistics()
        assert stats.drops["too_slow"] == 2 and stats.aborted == 2
        assert stats.queued_bytes == 0 and stats.writers == 0


@pytest.mark.parametrize("then", ["reset", "close-still-not-reading", "nothing",
                                  "keep-sending"])
async def test_a_slow_reader_is_closed_then_gone_whatever_its_client_does(
    lifespan: bool, autojump_clock: Any, then: str,
) -> None:
    async with relay(lifespan) as (app, connect):
        sender, slow = connect(), connect()
        await until(lambda: app.statistics().connections == 2)
        slow.reads = False
        async with trio.open_nursery() as floods:
            floods.start_soon(sender.flood, 10)  # 2 MiB: over the slow one's limit
            await until(lambda: app.statistics().queued_bytes > LIMITS.max_queue_bytes)
            over = trio.current_time()
            await until(lambda: "too_slow" in app.statistics().drops)
            waited = trio.current_time() - over
            assert waited == pytest.approx(LIMITS.slow_reader_timeout_s, abs=0.01)
            closed = trio.current_time()
            if then == "reset":
                slow.reset()
            elif then == "close-still-not-reading":
                await slow.close()
            elif then == "keep-sending":
                floods.start_soon(slow.flood, 100_000)
            await until(lambda: app.statistics().connections == 1)
            waited = trio.current_time() - closed
            if then == "reset":
                assert waited < 0.1, "a client that resets is gone at once"
            else:  # still reading nothing, the writer's send stays blocked: reset
                assert waited == pytest.approx(LIMITS.close_grace_s, abs=0.02)
                assert app.statistics().aborted == 1
            floods.cancel_scope.cancel()
        # The sender was never punished: it is still there and can talk again.
        assert sender.closed_with() is None
        newcomer = connect()
        await until(lambda: app.statistics().connections == 2)
        await sender.to_app.send({"type": "websocket.receive", "bytes": b"hi"})
        await until(lambda: any(m.get("bytes") == b"hi" for m in newcomer.sent))


async def test_a_refused_client_that_never_closes_is_reset_after_the_grace(
    lifespan: bool, autojump_clock: Any,
) -> None:
    limits = RelayLimits(max_connections_per_room=1, close_grace_s=5.0)
    async with relay(lifespan) as (app, connect):
        app.limits = limits
        first = connect()
        await until(lambda: app.statistics().connections == 1)
        refused = connect()
        await until(lambda: refused.closed_with() == RelayCloseCode.ROOM_FULL)
        start = trio.current_time()
        async with trio.open_nursery() as floods:
            floods.start_soon(refused.flood, 100_000)  # ignores the close, keeps sending
            await refused.was_reset.wait()
        assert trio.current_time() - start == pytest.approx(limits.close_grace_s, abs=0.02)
        assert first.closed_with() is None


async def test_shutdown_resets_what_has_not_closed_after_its_grace(
    lifespan: bool, autojump_clock: Any,
) -> None:
    async with relay(lifespan) as (app, connect):
        polite, deaf = connect(), connect()
        await until(lambda: app.statistics().connections == 2)
        deaf.reads = False
        start = trio.current_time()
        app.close_all(grace_s=2.0)
        await until(lambda: polite.closed_with() == RelayCloseCode.GOING_AWAY)
        await polite.close()
        await app.wait_no_connections()
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.02)
        assert polite.was_reset.is_set() is False and deaf.was_reset.is_set()
