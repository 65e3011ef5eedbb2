"""Messages that cross our Close on the wire are events, never a crash (issue 14).

A side that sent Close (the sync service resolving a duplicate session does)
keeps reading until the stream ends, and the peer, which had not yet read the
Close, may still send what the protocol allowed it before: its catalogue
digest, its full catalogue, a DeltaRequest, updates, heartbeats. h11's
invariant holds: whatever arrives gives events or RemoteProtocolError, never
another exception, and nothing is sent after our Close.

The second half drives two honest Connections through random conversations
(seeded) in which either side may close at any point and frames cross: no
honest peer is ever refused, and nothing follows a side's Close.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    DEVICES,
    Catalogue,
    CatalogueEntry,
    CatalogueReceived,
    CatchUpDone,
    Close,
    CloseCode,
    Connection,
    DeltaRequest,
    Heartbeat,
    LocalProtocolError,
    SideState,
    StateVector,
    StateVectorReceived,
    Update,
)
from tests.protocol_helpers import deliver, established


def entry(doc_id: str, fill: int) -> CatalogueEntry:
    return CatalogueEntry(doc_id, DEVICES, bytes([fill]) * 32)


def test_a_different_catalogue_arriving_after_our_close_is_not_answered() -> None:
    # The deterministic form of the crash: A sends its catalogue, then Close
    # (1001, "duplicate session"); B's different catalogue digest reaches A after.
    a, b = established("crossing")
    to_b = a.send(Catalogue((entry("journal/2026-12", 1),)))
    to_b += a.send(Close(1001, "duplicate session"))
    to_a = b.send(Catalogue((entry("journal/2026-12", 2),)))
    assert deliver(to_a, a) == []  # was: AssertionError in _compare_digests
    assert a.data_to_send() == b""  # no full catalogue after our Close
    assert a.our_state is SideState.CLOSED and a.their_state is SideState.ANNOUNCED

    # B reads A's digest (differs: B lists its catalogue), then A's Close.
    events = deliver(to_b, b)
    assert events == [Close(1001, "duplicate session")]
    listing = b.data_to_send()
    assert listing  # B's full catalogue, sent before it read the Close
    (received,) = deliver(listing, a)  # crossing our Close: still an event
    assert isinstance(received, CatalogueReceived)
    assert received.differing == ("journal/2026-12",)
    assert a.data_to_send() == b""


def test_requests_and_updates_after_our_close_are_events_and_get_no_answer() -> None:
    a, b = established("crossing-requests")
    to_b = a.send(Catalogue((entry("notes", 1),)))
    to_a = b.send(Catalogue((entry("notes", 2),)))
    to_b += a.data_to_send()
    to_a += b.data_to_send()
    deliver(to_a, a)  # A lists its catalogue (digests differ)
    deliver(to_b, b)
    (listed,) = deliver(b.data_to_send(), a)
    (listed_b,) = deliver(a.data_to_send(), b)
    assert isinstance(listed, CatalogueReceived) and isinstance(listed_b, CatalogueReceived)
    request = b.send(DeltaRequest((StateVector("notes", DEVICES, b"\x00"),)))
    a.send(DeltaRequest((StateVector("notes", DEVICES, b"\x00"),)))
    a.data_to_send()
    closing = a.send(Close(int(CloseCode.GOING_AWAY), "going"))
    assert closing
    update = b.send(Update("notes", DEVICES, b"\x00\x00"))
    heartbeat = b.send(Heartbeat(3))
    events = deliver(request + update + heartbeat, a)
    assert [type(e) for e in events] == [StateVectorReceived, Update, Heartbeat]
    assert a.data_to_send() == b""  # no CatchUpDone, no HeartbeatAck after our Close


def test_every_send_after_close_is_refused_locally() -> None:
    a, _ = established("closed-sends")
    a.send(Close(int(CloseCode.NORMAL)))
    for message in (Catalogue(()), Update("d", DEVICES, b"x"), Heartbeat(1),
                    DeltaRequest(()), Close(int(CloseCode.NORMAL))):
        try:
            a.send(message)
        except LocalProtocolError:
            continue
        raise AssertionError(f"{message!r} was sent after Close")


# --------------------------------------------------------------------------- conversations


class Honest:
    """One side driven as a node drives it: answers what it must, sends what it may."""

    def __init__(self, conn: Connection, fill: int) -> None:
        self.conn = conn
        self.fill = fill
        self.outbox = bytearray()  # bytes written, not yet delivered
        self.closed = False
        self.heartbeat = 0

    def send(self, message: object) -> None:
        try:
            self.outbox += self.conn.send(message)  # type: ignore[arg-type]
        except LocalProtocolError:
            pass  # not allowed now: an honest node does not send it

    def act(self, choice: int) -> None:
        if choice == 0:
            self.send(Catalogue((entry("notes", self.fill), entry(f"only-{self.fill}", 9))))
        elif choice == 1:
            self.send(Update("notes", DEVICES, bytes([self.fill])))
        elif choice == 2:
            self.heartbeat += 1
            self.send(Heartbeat(self.heartbeat))
        elif choice == 3:
            self.send(Close(1001, "duplicate session"))
        self.outbox += self.conn.data_to_send()

    def take(self, data: bytes) -> None:
        """Read *data* as the session's reader does and answer its events."""
        for event in deliver(data, self.conn):
            if isinstance(event, CatalogueReceived):
                self.send(DeltaRequest(tuple(StateVector(d, DEVICES, b"\x00")
                                             for d in event.differing)))
            elif isinstance(event, StateVectorReceived):
                self.send(Update(event.doc_id, event.sync_class, b"\x01"))
            elif isinstance(event, CatchUpDone | Close):
                pass
        self.outbox += self.conn.data_to_send()


def frames_after_close_ok(side: Honest) -> None:
    if side.conn.our_state is SideState.CLOSED:
        assert side.conn.data_to_send() == b""


@settings(max_examples=300, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 40))
def test_honest_conversations_with_a_close_anywhere_never_fail(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    a_conn, b_conn = established(f"conversation-{seed % 7}")
    a, b = Honest(a_conn, 1), Honest(b_conn, 2 if rng.random() < 0.7 else 1)
    for _ in range(steps):
        side, other = (a, b) if rng.random() < 0.5 else (b, a)
        if rng.random() < 0.5:
            side.act(rng.randrange(5))
        elif side.outbox:
            cut = rng.randint(1, len(side.outbox))  # deliver part: frames cross
            data, side.outbox[:] = bytes(side.outbox[:cut]), side.outbox[cut:]
            other.take(data)
        frames_after_close_ok(side)
    for side, other in ((a, b), (b, a), (a, b)):  # drain both ways
        data, side.outbox[:] = bytes(side.outbox), b""
        other.take(data)
    assert a.conn.our_state is not SideState.ERROR and b.conn.our_state is not SideState.ERROR


def test_no_assert_statements_in_the_protocol_package() -> None:
    # python -O strips asserts, and remote input must never reach one: every
    # check in protocol/ raises a ProtocolError (the audit of issue 14).
    import ast
    from pathlib import Path

    import protocol

    found = []
    for path in sorted(Path(protocol.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assert):
                found.append(f"{path.name}:{node.lineno}")
    assert found == []
