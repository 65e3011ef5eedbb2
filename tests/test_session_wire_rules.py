"""What a node puts on the wire where spec/protocol.md leaves a choice to the node:
a failed handshake closes silently (§4, §5), a Close is not answered (§7.5), a
live update for a document the receiver keeps local is ignored and the session
goes on (§7.3), a change of sync class ends sessions with Close(GOING_AWAY,
"catalogue changed") (§7.3), heartbeat counters start at 1 and count up (§7.4).

The node's end is a real SyncSession (or SyncService) over its store and
group; the other end is a bare protocol Connection driven byte by byte, so the
test sees exactly what the node sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trio
import trio.testing
from pycrdt import Doc

from crdt import SyncClass
from crdt.journal import Reflection, write_reflection
from crdt.values import utc_now
from node.sync.service import SyncService
from node.sync.session import SessionError, SyncSession
from protocol import (
    INITIATOR,
    NEED_DATA,
    RESPONDER,
    Catalogue,
    CatalogueReceived,
    CatchUpDone,
    Close,
    CloseCode,
    Connection,
    ConnectionClosed,
    Credentials,
    DeltaRequest,
    Heartbeat,
    HeartbeatAck,
    Role,
    Update,
)
from tests.protocol_helpers import seeded_rng
from tests.sync_helpers import Device, open_devices

DEADLINE_S = 10


class RawPeer:
    """A device's end of a session as bare protocol: every message the node sent is kept."""

    def __init__(self, stream: trio.abc.Stream, credentials: Credentials, role: Role) -> None:
        self.stream = stream
        self.conn = Connection(role, credentials, seeded_rng(f"raw/{role.value}"))
        self.events: list[Any] = []
        self.received = bytearray()
        self.ended = False

    async def flush(self) -> None:
        if out := self.conn.data_to_send():
            await self.stream.send_all(out)

    async def send(self, message: Any) -> None:
        await self.stream.send_all(self.conn.send(message))

    async def read_until(self, wanted: Any) -> None:
        """Read and handle the node's bytes until *wanted(events)* holds or the stream ends."""
        with trio.fail_after(DEADLINE_S):
            while not wanted(self.events) and not self.ended:
                data = await self.stream.receive_some(65536)
                self.received += data
                self.conn.receive_data(bytes(data))
                while (event := self.conn.next_event()) is not NEED_DATA:
                    self.events.append(event)
                    if isinstance(event, ConnectionClosed):
                        self.ended = True
                        return
                    if isinstance(event, CatalogueReceived):
                        await self.send(DeltaRequest(()))
                await self.flush()

    def messages(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


def raw_credentials(me: Device, node: Device, *, epoch: int | None = None,
                    secret: bytes | None = None) -> Credentials:
    """*me*'s credentials, knowing only *node* (as the raw end of a session with it)."""
    ring = me.keyring
    chosen = ring.epoch if epoch is None else epoch
    return Credentials(ring.device_seed, secret or ring.epochs.get(chosen, bytes(32)), chosen,
                       frozenset({node.keyring.device_public}))


async def run_node(session: SyncSession, failures: list[str]) -> None:
    try:
        await session.run()
    except SessionError as exc:
        failures.append(str(exc))


@asynccontextmanager
async def session_with_raw_peer(
    node: Device, peer: Device, node_role: Role = RESPONDER, **raw: Any
) -> AsyncIterator[tuple[SyncSession, RawPeer, list[str]]]:
    """A node's SyncSession with *peer* played as bare protocol over an in-memory stream."""
    ours, theirs = trio.testing.memory_stream_pair()
    session = SyncSession(node.store, node.group, ours, node_role)
    peer_role = INITIATOR if node_role is RESPONDER else RESPONDER
    raw_peer = RawPeer(theirs, raw_credentials(peer, node, **raw), peer_role)
    failures: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_node, session, failures)
        await raw_peer.flush()  # an initiator's HELLO
        yield session, raw_peer, failures
        await raw_peer.stream.aclose()  # the node's reader sees the end of the stream
        nursery.cancel_scope.deadline = trio.current_time() + DEADLINE_S


async def open_session(raw_peer: RawPeer) -> None:
    """Complete the handshake and an (empty) catalogue exchange with the node."""
    await raw_peer.read_until(lambda events: any(
        type(e).__name__ == "HandshakeComplete" for e in events))
    await raw_peer.send(Catalogue(()))
    await raw_peer.read_until(lambda events: any(isinstance(e, CatchUpDone) for e in events))


# --- §4, §5: a handshake that fails ends without a word ---------------------------


async def test_a_hello_at_an_unknown_epoch_is_met_with_silence(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["node", "peer"]) as (node, peer), \
            session_with_raw_peer(node, peer, epoch=5, secret=bytes(range(32))) as (
                session, raw_peer, failures):
        await raw_peer.read_until(lambda events: False)  # until the node hangs up
    assert raw_peer.ended and bytes(raw_peer.received) == b""
    assert failures and "epoch 5" in failures[0]
    assert not session.handshake_done.is_set()


async def test_a_hello_from_outside_the_group_is_met_with_silence(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["node", "peer"]) as (node, peer), \
            session_with_raw_peer(node, peer, secret=bytes(range(32))) as (
                _, raw_peer, failures):
        await raw_peer.read_until(lambda events: False)
    assert raw_peer.ended and bytes(raw_peer.received) == b""
    assert failures and "does not know this group's secret" in failures[0]


async def test_an_initiator_refusing_the_reply_sends_no_finish_and_no_close(
    tmp_path: Path,
) -> None:
    async with open_devices(tmp_path, ["node", "peer"]) as (node, peer):
        node.group.remove_device(peer.keyring.device_id)  # peer is no longer known to node
        ours, theirs = trio.testing.memory_stream_pair()
        session = SyncSession(node.store, node.group, ours, INITIATOR, epoch=0)
        raw_peer = RawPeer(theirs, raw_credentials(peer, node, epoch=0), RESPONDER)
        failures: list[str] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_node, session, failures)
            await raw_peer.read_until(lambda events: False)
        hello_bytes = 6 + 1 + 32 + 32  # the node's HELLO at epoch 0, nothing after it
        assert bytes(raw_peer.received[:2]) == b"\x01\x01"
        assert len(raw_peer.received) == hello_bytes
        assert failures and "not a member" in failures[0]


# --- §7.5: Close is not answered --------------------------------------------------


async def test_a_close_is_not_answered_and_ends_the_session_cleanly(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["node", "peer"]) as (node, peer), \
            session_with_raw_peer(node, peer) as (session, raw_peer, failures):
        await open_session(raw_peer)
        await raw_peer.send(Close(int(CloseCode.NORMAL), "bye"))
        await raw_peer.read_until(lambda events: False)  # to the end of the stream
    assert raw_peer.ended
    assert raw_peer.messages(Close) == [], "the node answered a Close"
    assert session.peer_close == Close(0, "bye")
    assert failures == []


def test_a_close_answering_a_close_is_accepted() -> None:
    """A peer that answers Close anyway (version 1 said SHOULD) is not an error."""
    from tests.protocol_helpers import connection_pair, deliver, handshake

    a, b = connection_pair()
    handshake(a, b)
    deliver(a.send(Close(0, "done")), b)
    answer = b.send(Close(0, "done too"))
    assert deliver(answer, a) == [Close(0, "done too")]


# --- §7.3: live updates the receiver does not keep shared -------------------------


def shard_update(text: str) -> tuple[str, bytes]:
    doc: Doc[Any] = Doc()
    reflection = Reflection("abcdefghjkmn", utc_now(), text)
    write_reflection(doc, reflection)
    return reflection.shard, doc.get_update()


async def test_a_live_update_for_a_document_kept_local_is_ignored(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["node", "peer"]) as (node, peer):
        kept = await node.journal.add("kept on this device only")
        await node.store.set_sync_class(kept.shard, SyncClass.LOCAL)
        shard, update = shard_update("LOCAL-CANARY from the peer")
        assert shard == kept.shard
        async with session_with_raw_peer(node, peer) as (session, raw_peer, failures):
            await open_session(raw_peer)
            await raw_peer.send(Update(shard, "devices", update))
            await raw_peer.send(Heartbeat(41))
            await raw_peer.read_until(lambda events: HeartbeatAck(41) in events)
            # The session goes on: the node handled the update (ignored it), then acked.
            assert session.stats.updates_in == 0
            texts = [r.text for r in await node.journal.all()]
            assert texts == ["kept on this device only"]
            # A document it does not have at all is taken (new documents may appear).
            other = Doc[Any]()
            write_reflection(other, Reflection("zzzzzzzzzzzz", utc_now(), "new one"))
            await raw_peer.send(Update("journal/1999-01", "devices", other.get_update()))
            await raw_peer.send(Heartbeat(42))
            await raw_peer.read_until(lambda events: HeartbeatAck(42) in events)
            assert session.stats.updates_in == 1
            assert node.store.info("journal/1999-01") is not None
            assert raw_peer.messages(Close) == []
            session.close_soon("test over")
        assert failures == []


async def test_a_change_of_sync_class_ends_sessions_with_going_away(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["node", "peer"]) as (node, peer):
        kept = await node.journal.add("shared for now")
        core = SimpleNamespace(store=node.store, home=SimpleNamespace(path=node.path))
        service = SyncService(core, node.group, listen=("127.0.0.1", 0))  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            port = await nursery.start(service.run)
            async with await trio.open_tcp_stream("127.0.0.1", port) as stream:
                raw_peer = RawPeer(stream, raw_credentials(peer, node), INITIATOR)
                await raw_peer.flush()
                await open_session(raw_peer)
                await node.store.set_sync_class(kept.shard, SyncClass.LOCAL)
                await raw_peer.read_until(lambda events: bool(raw_peer.messages(Close)))
            nursery.cancel_scope.cancel()
        assert raw_peer.messages(Close) == [Close(int(CloseCode.GOING_AWAY), "catalogue changed")]


# --- §7.4: heartbeat counters --------------------------------------------------------


async def test_heartbeat_counters_start_at_one_and_count_up(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["node", "peer"]) as (node, peer), \
            session_with_raw_peer(node, peer) as (session, raw_peer, failures):
        await open_session(raw_peer)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.wait_acknowledged)
            nursery.start_soon(session.wait_acknowledged)
            await raw_peer.read_until(lambda events: len(raw_peer.messages(Heartbeat)) == 2)
        assert raw_peer.messages(Heartbeat) == [Heartbeat(1), Heartbeat(2)]
        # Any counter is answered as it is, in order, edge values included.
        for counter in (0, 2**64 - 1, 7):
            await raw_peer.send(Heartbeat(counter))
        await raw_peer.read_until(lambda events: len(raw_peer.messages(HeartbeatAck)) == 3)
        assert raw_peer.messages(HeartbeatAck) == [
            HeartbeatAck(0), HeartbeatAck(2**64 - 1), HeartbeatAck(7)]
        session.close_soon("test over")
    assert failures == []

