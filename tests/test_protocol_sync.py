"""Catalogue sync between two Connections over in-memory bytes, with fake documents.

A fake document is a dict client -> list of values; its state vector uses the
lib0 layout (count, then client/clock varints) so ``state_vector_digest`` reads
it like a pycrdt one, and an update is the JSON of the missing items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from protocol import (
    DEVICES,
    INITIATOR,
    LOCAL,
    NEED_DATA,
    RESPONDER,
    Catalogue,
    CatalogueEntry,
    CatalogueReceived,
    CatchUpDone,
    Close,
    CloseCode,
    Connection,
    DeltaRequest,
    Event,
    HandshakeComplete,
    Heartbeat,
    HeartbeatAck,
    LocalProtocolError,
    RemoteProtocolError,
    SideState,
    StateVector,
    StateVectorReceived,
    Update,
    state_vector_digest,
)
from protocol._codec import encode_varint
from tests.protocol_helpers import (
    ALICE_LAPTOP,
    ALICE_PHONE,
    connection_pair,
    credentials,
    deliver,
    established,
    handshake,
    seeded_rng,
)


@dataclass
class FakeDoc:
    sync_class: str
    items: dict[int, list[str]] = field(default_factory=dict)

    def state_vector(self) -> bytes:
        parts = [encode_varint(len(self.items))]
        for client, values in sorted(self.items.items()):
            parts += [encode_varint(client), encode_varint(len(values))]
        return b"".join(parts)


def decode_sv(sv: bytes) -> dict[int, int]:
    values, pos = [], 0
    while pos < len(sv):
        value, shift = 0, 0
        while True:
            byte = sv[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        values.append(value)
    return dict(zip(values[1::2], values[2::2], strict=True))


@dataclass
class FakeReplica:
    """The node's part: answers the Connection's events from its documents."""

    docs: dict[str, FakeDoc]
    asked_for: list[str] = field(default_factory=list)  # SVs the peer sent us
    caught_up: bool = False

    def edit(self, doc_id: str, client: int, value: str, sync_class: str = DEVICES) -> None:
        doc = self.docs.setdefault(doc_id, FakeDoc(sync_class))
        doc.items.setdefault(client, []).append(value)

    def catalogue(self) -> Catalogue:
        return Catalogue(
            tuple(
                CatalogueEntry(doc_id, doc.sync_class, state_vector_digest(doc.state_vector()))
                for doc_id, doc in self.docs.items()
                if doc.sync_class != LOCAL
            )
        )

    def delta(self, doc_id: str, sv: bytes) -> bytes:
        have = decode_sv(sv)
        doc = self.docs[doc_id]
        missing = [
            (client, clock, value)
            for client, values in doc.items.items()
            for clock, value in enumerate(values)
            if clock >= have.get(client, 0)
        ]
        return json.dumps(missing).encode()

    def apply(self, doc_id: str, sync_class: str, update: bytes) -> None:
        doc = self.docs.setdefault(doc_id, FakeDoc(sync_class))
        for client, clock, value in json.loads(update):
            values = doc.items.setdefault(client, [])
            if clock == len(values):
                values.append(value)

    def handle(self, conn: Connection, event: Event) -> bytes:
        match event:
            case HandshakeComplete():
                return conn.send(self.catalogue())
            case CatalogueReceived(entries=entries, differing=differing):
                classes = {e.doc_id: e.sync_class for e in entries}
                wanted = [
                    StateVector(
                        doc_id,
                        classes[doc_id],
                        self.docs[doc_id].state_vector() if doc_id in self.docs else b"\x00",
                    )
                    for doc_id in differing
                    if self.docs.get(doc_id, FakeDoc(DEVICES)).sync_class != LOCAL
                ]
                return conn.send(DeltaRequest(tuple(wanted)))
            case StateVectorReceived(doc_id=doc_id, sync_class=cls, state_vector=sv):
                self.asked_for.append(doc_id)
                return conn.send(Update(doc_id, cls, self.delta(doc_id, sv)))
            case Update(doc_id=doc_id, sync_class=cls, update=update):
                self.apply(doc_id, cls, update)
            case CatchUpDone():
                self.caught_up = True
        return b""


def run_session(
    left: FakeReplica, right: FakeReplica, label: str = "sync"
) -> tuple[Connection, Connection, list[int]]:
    """Connect, handshake and pump until quiet; returns bytes per flight after the handshake."""
    a, b = connection_pair(label=label)
    handshake(a, b)
    pending = {
        id(a): left.handle(a, HandshakeComplete(b"", 0, b"")),
        id(b): right.handle(b, HandshakeComplete(b"", 0, b"")),
    }
    flights = []
    while any(pending.values()):
        flights.append(sum(len(v) for v in pending.values()))
        outgoing = dict(pending)
        pending = {id(a): b"", id(b): b""}
        for src, dst, replica in ((a, b, right), (b, a, left)):
            data = outgoing[id(src)]
            if not data:
                continue
            dst.receive_data(data)
            while (event := dst.next_event()) is not NEED_DATA:
                pending[id(dst)] += replica.handle(dst, event)
            pending[id(dst)] += dst.data_to_send()
    return a, b, flights


def shared_docs(replica: FakeReplica) -> dict[str, dict[int, list[str]]]:
    return {k: v.items for k, v in replica.docs.items() if v.sync_class != LOCAL}


def test_only_differing_documents_exchange_state_vectors_and_deltas() -> None:
    left, right = FakeReplica({}), FakeReplica({})
    for i in range(20):
        for replica in (left, right):
            replica.edit(f"journal/{i:02}", 1, f"entry {i}")
    left.edit("journal/03", 1, "only on the laptop")
    right.edit("journal/07", 2, "only on the phone")
    right.edit("tensions", 2, "new on the phone")
    left.edit("settings", 1, "CANARY-local", sync_class=LOCAL)

    a, b, _ = run_session(left, right)

    assert shared_docs(left) == shared_docs(right)
    assert "settings" not in right.docs
    # each side pulls the documents it lacks or holds differently, nothing else
    assert sorted(left.asked_for) == ["journal/03", "journal/07"]
    assert sorted(right.asked_for) == ["journal/03", "journal/07", "tensions"]
    assert left.caught_up and right.caught_up
    assert not a.in_sync
    assert a.our_state is SideState.REQUESTED and b.their_state is SideState.REQUESTED


def test_reconnect_with_nothing_new_costs_one_small_round_trip() -> None:
    left, right = FakeReplica({}), FakeReplica({})
    for i in range(300):
        left.edit(f"journal/{i:03}", 1, "x" * 50)
    run_session(left, right, "first")
    assert shared_docs(left) == shared_docs(right)

    left.caught_up = right.caught_up = False
    a, b, flights = run_session(left, right, "second")
    assert flights == [110]  # one CatalogueDigest frame each way, sent concurrently
    assert a.in_sync and b.in_sync
    assert left.caught_up and right.caught_up
    assert a.our_state is SideState.ANNOUNCED  # and nothing more to say


def test_live_updates_flow_after_catch_up_both_ways() -> None:
    left, right = FakeReplica({}), FakeReplica({})
    left.edit("journal", 1, "first")
    a, b, _ = run_session(left, right)
    left.edit("journal", 1, "second")
    (event,) = deliver(
        a.send(Update("journal", DEVICES, left.delta("journal", b"\x01\x01\x01"))), b
    )
    assert isinstance(event, Update)
    right.apply(event.doc_id, event.sync_class, event.update)
    right.edit("journal", 2, "from the phone")
    (event,) = deliver(
        b.send(Update("journal", DEVICES, right.delta("journal", b"\x01\x01\x02"))), a
    )
    assert isinstance(event, Update)
    left.apply(event.doc_id, event.sync_class, event.update)
    assert shared_docs(left) == shared_docs(right)


# --- the local choke point -------------------------------------------------------------


def test_a_local_document_can_never_be_listed_or_sent() -> None:
    a, _ = established()
    digest = bytes(32)
    with pytest.raises(LocalProtocolError, match="local"):
        a.send(Catalogue((CatalogueEntry("diary", LOCAL, digest),)))
    assert a.our_state is SideState.OPEN
    with pytest.raises(LocalProtocolError, match="local"):
        a.send(Update("diary", LOCAL, b"CANARY"))
    with pytest.raises(LocalProtocolError, match="not shared"):
        a.send(Update("post", "commons", b"x"))


def test_a_document_keeps_the_class_it_was_listed_with() -> None:
    both = (DEVICES, "commons")
    a = Connection(INITIATOR, credentials(ALICE_LAPTOP), seeded_rng("i"), shareable=both)
    b = Connection(RESPONDER, credentials(ALICE_PHONE), seeded_rng("r"), shareable=both)
    handshake(a, b)
    listed = a.send(Catalogue((CatalogueEntry("journal", DEVICES, bytes(32)),)))
    with pytest.raises(LocalProtocolError, match="listed as"):
        a.send(Update("journal", "commons", b"x"))
    assert deliver(listed + a.send(Update("post", "commons", b"x")), b) == [
        Update("post", "commons", b"x")
    ]


def test_only_documents_the_peer_offered_can_be_requested() -> None:
    left, right = FakeReplica({}), FakeReplica({})
    left.edit("a", 1, "x")
    right.edit("b", 1, "y")
    a, b = established()
    da, db = (
        left.handle(a, HandshakeComplete(b"", 0, b"")),
        right.handle(b, HandshakeComplete(b"", 0, b"")),
    )
    deliver(da, b)
    deliver(db, a)
    (received,) = deliver(b.data_to_send(), a)
    assert isinstance(received, CatalogueReceived) and received.differing == ("b",)
    with pytest.raises(LocalProtocolError, match="did not offer"):
        a.send(DeltaRequest((StateVector("a", DEVICES, b"\x00"),)))
    with pytest.raises(LocalProtocolError, match="cannot send"):
        a.send(Catalogue(()))  # only once


# --- a misbehaving peer (frames forged with the peer's own session keys) ---------------


def _forge(conn: Connection, message: object) -> bytes:
    conn._queue(message)  # type: ignore[arg-type]  # bypasses the sender's checks
    return conn.data_to_send()


def test_peer_asking_for_a_document_we_did_not_offer_is_refused() -> None:
    a, b = established()
    deliver(a.send(Catalogue((CatalogueEntry("x", DEVICES, bytes(32)),))), b)
    deliver(b.send(Catalogue(())), a)
    deliver(a.data_to_send(), b)
    deliver(b.data_to_send(), a)
    forged = _forge(b, DeltaRequest((StateVector("secret", DEVICES, b"\x00"),)))
    b_state = b._theirs
    with pytest.raises(RemoteProtocolError, match="did not offer"):
        deliver(forged, a)
    assert b_state is b._theirs and a.our_state is SideState.ERROR


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        (Update("post", "commons", b"x"), "commons"),
        (HeartbeatAck(5), "unknown heartbeat"),
        (CatchUpDone(), "CATCH_UP_DONE"),
        (DeltaRequest(()), "DELTA_REQUEST"),
        (Catalogue(()), "CATALOGUE"),
    ],
)
def test_peer_messages_out_of_place_are_refused(message: object, fragment: str) -> None:
    a, b = established()
    with pytest.raises(RemoteProtocolError, match=fragment):
        deliver(_forge(a, message), b)


def test_heartbeats_are_acknowledged_by_the_connection() -> None:
    a, b = established()
    (event,) = deliver(a.send(Heartbeat(1)), b)
    assert event == Heartbeat(1)
    (ack,) = deliver(b.data_to_send(), a)
    assert ack == HeartbeatAck(1)
    assert a.statistics().heartbeats_outstanding == 0
    for n in range(4):
        a.send(Heartbeat(10 + n))
    with pytest.raises(LocalProtocolError, match="unacknowledged"):
        a.send(Heartbeat(99))


def test_close_ends_the_sending_side() -> None:
    a, b = established()
    (event,) = deliver(a.send(Close(CloseCode.GOING_AWAY, "bye")), b)
    assert event == Close(CloseCode.GOING_AWAY, "bye")
    assert b.their_state is SideState.CLOSED
    with pytest.raises(LocalProtocolError):
        a.send(Update("d", DEVICES, b"x"))
    b.send(Close(CloseCode.NORMAL))
    b.receive_data(b"")
    assert b.next_event().__class__.__name__ == "ConnectionClosed"
