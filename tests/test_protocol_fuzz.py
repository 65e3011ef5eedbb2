"""T5: hostile bytes, whole and one byte at a time, give events or RemoteProtocolError.

Never another exception, and an error leaves the connection in ERROR with no
event produced for the offending frame.
"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    DEVICES,
    NEED_DATA,
    Catalogue,
    CatalogueEntry,
    Close,
    Connection,
    ConnectionClosed,
    DeltaRequest,
    Heartbeat,
    Pairing,
    RemoteProtocolError,
    SideState,
    StateVector,
    Update,
)
from protocol.pairing import PAIRER, DeviceInfo, GroupSnapshot
from tests.protocol_helpers import (
    ALICE_LAPTOP,
    GROUP_SECRET,
    connection_pair,
    established,
    seeded_rng,
)

FUZZ = settings(max_examples=400, derandomize=True, deadline=None)

_, FRESH_RESPONDER = connection_pair(label="fuzz")
_sender, OPEN_RECEIVER = established("fuzz")
VALID_STREAM = (
    _sender.send(Catalogue((CatalogueEntry("journal/2024-05", DEVICES, bytes(32)),)))
    + _sender.send(Update("journal/2024-05", DEVICES, b"\x01\x02\x03" * 10))
    + _sender.send(Heartbeat(7))
)



def _closed_receiver() -> tuple[Connection, bytes]:
    """A side that listed its catalogue and sent Close (as a duplicate session does),
    and a valid stream its peer sends meanwhile: digest, full list, request, update."""
    peer, closed = established("fuzz-closed")
    closed.send(Catalogue((CatalogueEntry("journal/2024-05", DEVICES, bytes(32)),)))
    closed.send(Close(1001, "duplicate session"))
    stream = peer.send(Catalogue((CatalogueEntry("journal/2024-05", DEVICES, bytes([1]) * 32),)))
    stream += peer.send(Update("journal/2024-05", DEVICES, b"\x01\x02\x03" * 10))
    stream += peer.send(Heartbeat(7))
    return closed, stream


CLOSED_RECEIVER, CLOSED_VALID_STREAM = _closed_receiver()


def _listed_then_closed() -> tuple[Connection, bytes]:
    """A side whose catalogue differed, listed in full, then closed; the peer's
    listing and DeltaRequest arrive after (they crossed the Close)."""
    peer, closed = established("fuzz-listed")
    to_peer = closed.send(Catalogue((CatalogueEntry("notes", DEVICES, bytes(32)),)))
    to_closed = peer.send(Catalogue((CatalogueEntry("notes", DEVICES, bytes([2]) * 32),)))
    _events(to_closed, closed)
    to_peer += closed.data_to_send()
    _events(to_peer, peer)
    to_closed = peer.data_to_send()
    to_closed += peer.send(DeltaRequest((StateVector("notes", DEVICES, b"\x00"),)))
    closed.send(Close(1001, "duplicate session"))
    return closed, to_closed


def _events(data: bytes, receiver: Connection) -> list[object]:
    receiver.receive_data(data)
    out = []
    while (event := receiver.next_event()) is not NEED_DATA:
        out.append(event)
    return out


LISTED_CLOSED_RECEIVER, LISTED_CLOSED_STREAM = _listed_then_closed()

FRESH_PAIRER = Pairing(
    PAIRER,
    "abcd-efgh",
    ALICE_LAPTOP.seed,
    seeded_rng("fuzz-p"),
    group=GroupSnapshot(GROUP_SECRET, 1, (DeviceInfo(ALICE_LAPTOP.key, "laptop"),)),
)


def feed(receiver: Connection | Pairing, chunks: list[bytes]) -> tuple[list[object], str]:
    """The events *receiver* produces from *chunks* and how it stopped: "need-data",
    "closed" or "error" (RemoteProtocolError, after which it produces nothing more)."""
    events: list[object] = []
    try:
        for chunk in chunks:
            receiver.receive_data(chunk)
            while True:
                event = receiver.next_event()
                if isinstance(event, ConnectionClosed):
                    return events, "closed"
                if event is NEED_DATA:
                    break
                events.append(event)
    except RemoteProtocolError:
        if isinstance(receiver, Connection):
            assert receiver.their_state is SideState.ERROR
        try:
            receiver.next_event()
        except RemoteProtocolError:
            return events, "error"
        raise AssertionError("an errored connection produced an event") from None
    return events, "need-data"


def whole_and_bytewise(receiver: Connection | Pairing, data: bytes) -> tuple[list[object], str]:
    """Feeds *data* whole, one byte at a time, and whole then end of stream. How the
    bytes are split must not change what comes out: the first two agree exactly,
    and the end of stream only adds to what the whole feed gave."""
    whole = feed(copy.deepcopy(receiver), [data])
    # b"" is the end of the stream, so empty data is fed as itself both ways
    single_bytes = [data[i : i + 1] for i in range(len(data))] or [data]
    bytewise = feed(copy.deepcopy(receiver), single_bytes)
    assert bytewise == whole
    ended_events, _ = feed(copy.deepcopy(receiver), [data, b""])
    assert ended_events[: len(whole[0])] == whole[0]
    return whole


def test_the_valid_streams_give_their_events_whole_and_bytewise() -> None:
    # Without this the fuzz tests below could pass on a receiver that yields nothing.
    events, end = whole_and_bytewise(OPEN_RECEIVER, VALID_STREAM)
    assert [type(e).__name__ for e in events] == ["Update", "Heartbeat"] and end == "need-data"
    events, end = whole_and_bytewise(CLOSED_RECEIVER, CLOSED_VALID_STREAM)
    assert [type(e).__name__ for e in events] == ["Update", "Heartbeat"] and end == "need-data"
    events, end = whole_and_bytewise(LISTED_CLOSED_RECEIVER, LISTED_CLOSED_STREAM)
    assert [type(e).__name__ for e in events] == ["CatalogueReceived", "StateVectorReceived"]
    assert end == "need-data"


def test_feed_reports_an_error_as_an_error() -> None:
    events, end = whole_and_bytewise(OPEN_RECEIVER, b"\xff" * 64)
    assert (events, end) == ([], "error")


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_before_the_handshake(data: bytes) -> None:
    whole_and_bytewise(FRESH_RESPONDER, data)


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_the_handshake(data: bytes) -> None:
    whole_and_bytewise(OPEN_RECEIVER, data)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_to_a_pairer(data: bytes) -> None:
    whole_and_bytewise(FRESH_PAIRER, data)


mutation = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, where, value in ops:
        at = where % (len(out) + 1)
        if op == "replace" and at < len(out):
            out[at] = value
        elif op == "insert":
            out.insert(at, value)
        elif op == "delete" and at < len(out):
            del out[at]
        elif op == "truncate":
            del out[at:]
    return bytes(out)


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutations_of_a_valid_session_stream(ops: list[tuple[str, int, int]]) -> None:
    whole_and_bytewise(OPEN_RECEIVER, mutate(VALID_STREAM, ops))


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutations_of_a_valid_handshake(ops: list[tuple[str, int, int]]) -> None:
    initiator, responder = connection_pair(label="fuzz")
    hello = initiator.data_to_send()
    whole_and_bytewise(responder, mutate(hello, ops))


# A side that has already sent Close keeps reading until the stream ends: what
# crosses its Close, valid or hostile, gives events or RemoteProtocolError.


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_to_a_side_that_sent_close(data: bytes) -> None:
    whole_and_bytewise(CLOSED_RECEIVER, data)


@FUZZ
@given(st.lists(mutation, min_size=0, max_size=4))
def test_mutations_of_a_stream_crossing_our_close(ops: list[tuple[str, int, int]]) -> None:
    whole_and_bytewise(CLOSED_RECEIVER, mutate(CLOSED_VALID_STREAM, ops))
    whole_and_bytewise(LISTED_CLOSED_RECEIVER, mutate(LISTED_CLOSED_STREAM, ops))
