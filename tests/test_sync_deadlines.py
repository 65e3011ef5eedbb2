"""T7: a slow or silent peer is closed by a deadline (virtual time: autojump clock)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio
import trio.testing

from node.sync.session import SessionError, SyncSession
from protocol import INITIATOR, NEED_DATA, RESPONDER, Connection
from protocol.limits import HANDSHAKE_TIMEOUT_S, IDLE_TIMEOUT_S
from tests.sync_helpers import open_devices


async def test_a_peer_that_never_completes_the_handshake_is_dropped(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_devices(tmp_path, ["a"]) as (a,):
        ours, theirs = trio.testing.memory_stream_pair()
        session = SyncSession(a.store, a.group, ours, RESPONDER)
        start = trio.current_time()
        with pytest.raises(SessionError, match="handshake timed out"):
            await session.run()  # the other end sends nothing at all (slowloris)
        assert trio.current_time() - start == pytest.approx(HANDSHAKE_TIMEOUT_S, abs=1)
        await theirs.aclose()


async def test_a_peer_that_goes_silent_is_closed_after_the_idle_timeout(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        ours, theirs = trio.testing.memory_stream_pair()
        session = SyncSession(a.store, a.group, ours, INITIATOR)
        peer = Connection(RESPONDER, b.group.credentials(), os.urandom)

        async def complete_handshake_then_go_silent() -> None:
            # answer HELLO and FINISH, then read everything and never write again
            while True:
                data = await theirs.receive_some(65536)
                if not data:
                    return
                peer.receive_data(bytes(data))
                while peer.next_event() is not NEED_DATA:
                    pass
                if out := peer.data_to_send():
                    if peer.handshake_state.value == "done":
                        continue  # silence: no catalogue, no heartbeat answers
                    await theirs.send_all(out)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(complete_handshake_then_go_silent)
            start = trio.current_time()
            with pytest.raises(SessionError, match=r"silent|heartbeat"):
                await session.run()
            elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
        assert session.handshake_done.is_set()
        assert IDLE_TIMEOUT_S <= elapsed <= IDLE_TIMEOUT_S * 2
