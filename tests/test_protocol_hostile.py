"""T5-T7 for the session: canonical framing, limits, replay, reflection, bit flips."""

from __future__ import annotations

import copy
import tracemalloc

import pytest

from protocol import (
    NEED_DATA,
    Close,
    CloseCode,
    Connection,
    Heartbeat,
    LocalProtocolError,
    RemoteProtocolError,
    SideState,
    Update,
)
from protocol._codec import Reader, encode_varint
from protocol.frames import PROTOCOL_VERSION, FrameKind, frame_header
from protocol.limits import MAX_FRAME_BYTES
from protocol.messages import decode_message
from tests.protocol_helpers import connection_pair, deliver, established


def _assert_failed(conn: Connection) -> None:
    assert conn.our_state is SideState.ERROR and conn.their_state is SideState.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


# --- canonical encodings -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x80\x00", "non-minimal"),
        (b"\xff" * 10 + b"\x01", "longer than 10"),
        (b"\xff" * 9 + b"\x7f", "over 64 bits"),
        (b"\x80", "truncated"),
    ],
)
def test_reader_rejects_non_canonical_varints(data: bytes, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment):
        Reader(data, "test").varint()


def test_varints_round_trip_at_the_edges() -> None:
    for value in (0, 1, 127, 128, 2**32, 2**64 - 1):
        reader = Reader(encode_varint(value), "test")
        assert reader.varint() == value
        reader.done()


@pytest.mark.parametrize(
    ("plaintext", "fragment"),
    [
        (b"\x06\x01\x00", "trailing"),  # Heartbeat(1) + one byte
        (b"\x99", "unknown message type"),
        (b"\x04\x00\x01\x00", "empty doc id"),
        (b"\x04\x01a\x00\x00", "sync class code 0"),  # 'local' has no wire code
        (b"\x04\x01a\x07\x00", "sync class code 7"),
        (b"\x04\x02\xff\xfe\x01\x00", "UTF-8"),
        (b"\x02\x02\x01b\x01" + bytes(32) + b"\x01a\x01" + bytes(32), "ascending"),
        (b"\x02\x02\x01a\x01" + bytes(32) + b"\x01a\x01" + bytes(32), "ascending"),
        (b"\x08\x00\x85\x02" + b"x" * 261, "over the limit"),
    ],
)
def test_messages_must_be_canonical(plaintext: bytes, fragment: str) -> None:
    with pytest.raises(RemoteProtocolError, match=fragment):
        decode_message(plaintext)


def test_unknown_version_is_refused_at_the_first_byte() -> None:
    _, b = connection_pair()
    b.receive_data(bytes((PROTOCOL_VERSION + 1,)))
    with pytest.raises(RemoteProtocolError, match="version 2") as info:
        b.next_event()
    assert info.value.close_code is CloseCode.UNSUPPORTED_VERSION
    assert "speaks only version 1" in str(info.value)


def test_unknown_frame_kind_is_refused_at_the_header() -> None:
    _, b = connection_pair()
    b.receive_data(bytes((PROTOCOL_VERSION, 0x7E, 0, 0, 0, 0)))
    with pytest.raises(RemoteProtocolError, match="unknown frame kind"):
        b.next_event()


def test_sealed_frame_before_the_handshake_is_refused() -> None:
    _, b = connection_pair()
    b.receive_data(frame_header(FrameKind.SEALED, 20) + bytes(20))
    with pytest.raises(RemoteProtocolError, match="not valid"):
        b.next_event()


# --- limits ----------------------------------------------------------------------


def _update_of_body(body_bytes: int) -> Update:
    # body = type(1) + doc id (1+1) + class(1) + varint length(4) + update + tag(16)
    return Update("d", "devices", b"\x00" * (body_bytes - 24))


def test_exactly_the_maximum_frame_is_accepted() -> None:
    a, b = established()
    data = a.send(_update_of_body(MAX_FRAME_BYTES))
    assert int.from_bytes(data[2:6], "big") == MAX_FRAME_BYTES
    (event,) = deliver(data, b)
    assert isinstance(event, Update) and len(event.update) == MAX_FRAME_BYTES - 24


def test_one_byte_more_is_refused_by_the_sender() -> None:
    a, _ = established()
    with pytest.raises(LocalProtocolError, match="does not fit") as info:
        a.send(_update_of_body(MAX_FRAME_BYTES + 1))
    assert info.value.close_code is CloseCode.TOO_LARGE
    assert a.our_state is SideState.OPEN  # nothing changed
    a.send(Heartbeat(1))


def test_one_byte_more_is_refused_by_the_receiver_from_its_header() -> None:
    _, b = established()
    b.receive_data(frame_header(FrameKind.SEALED, MAX_FRAME_BYTES + 1))
    with pytest.raises(RemoteProtocolError, match="limit") as info:
        b.next_event()
    assert info.value.close_code is CloseCode.TOO_LARGE


def test_a_header_claiming_4_gib_fails_at_once_with_small_memory() -> None:
    _, b = established()
    tracemalloc.start()
    try:
        b.receive_data(bytes((PROTOCOL_VERSION, FrameKind.SEALED)) + b"\xff\xff\xff\xff")
        with pytest.raises(RemoteProtocolError, match="4294967295"):
            b.next_event()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024


def test_handshake_frames_have_their_own_small_limit() -> None:
    _, b = connection_pair()
    b.receive_data(frame_header(FrameKind.HELLO, 4096))
    with pytest.raises(RemoteProtocolError, match="limit"):
        b.next_event()


def test_receive_buffer_is_linear_in_bytes_read() -> None:
    a, b = established()
    stream = b"".join(a.send(Update("d", "devices", bytes([i % 256]) * 100)) for i in range(3000))
    b.receive_data(stream)
    count = 0
    while b.next_event() is not NEED_DATA:
        count += 1
    assert count == 3000
    assert b.statistics().bytes_buffered == 0


# --- replay, reflection, reordering, tampering ---------------------------------------


def test_replayed_frame_is_rejected() -> None:
    a, b = established()
    frame = a.send(Update("d", "devices", b"one"))
    deliver(frame, b)
    with pytest.raises(RemoteProtocolError, match="replayed"):
        deliver(frame, b)
    _assert_failed(b)


def test_reflected_frame_is_rejected() -> None:
    a, _ = established()
    frame = a.send(Update("d", "devices", b"one"))
    with pytest.raises(RemoteProtocolError, match="reflected"):
        deliver(frame, a)


def test_reordered_frames_are_rejected() -> None:
    a, b = established()
    first = a.send(Update("d", "devices", b"one"))
    second = a.send(Update("d", "devices", b"two"))
    with pytest.raises(RemoteProtocolError):
        deliver(second + first, b)


def test_frame_from_another_session_is_rejected() -> None:
    a1, _ = established("one")
    _, b2 = established("two")
    with pytest.raises(RemoteProtocolError):
        deliver(a1.send(Update("d", "devices", b"x")), b2)


def test_every_single_bit_flip_is_rejected_without_any_event() -> None:
    a, b = established()
    frame = a.send(Update("doc", "devices", b"payload"))
    for bit in range(len(frame) * 8):
        receiver = copy.deepcopy(b)
        flipped = bytearray(frame)
        flipped[bit // 8] ^= 1 << (bit % 8)
        receiver.receive_data(bytes(flipped))
        with pytest.raises(RemoteProtocolError):
            # a longer length field just waits for bytes; the stream then ends
            assert receiver.next_event() is NEED_DATA
            receiver.receive_data(b"")
            receiver.next_event()
        assert receiver.their_state is SideState.ERROR
    (event,) = deliver(frame, b)  # the original still opens: the copies were independent
    assert event == Update("doc", "devices", b"payload")


def test_after_an_error_only_one_close_may_be_sent() -> None:
    a, b = established()
    with pytest.raises(RemoteProtocolError):
        deliver(b"\x01\x10\x00\x00\x00\x10" + bytes(16), b)
    with pytest.raises(LocalProtocolError):
        b.send(Update("d", "devices", b"x"))
    with pytest.raises(LocalProtocolError):
        b.receive_data(b"more")
    farewell = b.send(Close(CloseCode.PROTOCOL_ERROR, "bad frame"))
    (event,) = deliver(farewell, a)
    assert event == Close(CloseCode.PROTOCOL_ERROR, "bad frame")
    with pytest.raises(LocalProtocolError):
        b.send(Close(CloseCode.PROTOCOL_ERROR, "again"))
