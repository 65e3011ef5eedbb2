"""Handshake: who may authenticate, and what a failed handshake leaves behind."""

from __future__ import annotations

import pytest

from protocol import (
    INITIATOR,
    NEED_DATA,
    RESPONDER,
    CloseCode,
    Connection,
    Credentials,
    HandshakeComplete,
    HandshakeState,
    LocalProtocolError,
    RemoteProtocolError,
    SideState,
    Update,
)
from tests.protocol_helpers import (
    ALICE_LAPTOP,
    ALICE_PHONE,
    connection_pair,
    credentials,
    deliver,
    device,
    handshake,
    seeded_rng,
)


def test_two_devices_of_one_person_authenticate_each_other() -> None:
    a, b = connection_pair()
    wire = handshake(a, b)
    assert a.peer_device_key == ALICE_PHONE.key
    assert b.peer_device_key == ALICE_LAPTOP.key
    assert a.session_id == b.session_id
    assert a.our_state is SideState.OPEN and b.their_state is SideState.OPEN
    assert len(wire) == 71 + 182 + 150
    # no identity and no group value travels in clear
    for secret in (ALICE_LAPTOP.key, ALICE_PHONE.key, credentials(ALICE_PHONE).group_secret):
        assert secret not in wire


def test_each_session_has_fresh_keys() -> None:
    a1, b1 = connection_pair(label="one")
    a2, b2 = connection_pair(label="two")
    handshake(a1, b1)
    handshake(a2, b2)
    assert a1.session_id != a2.session_id


def test_the_initiator_may_send_right_after_its_finish() -> None:
    a, b = connection_pair()
    deliver(a.data_to_send(), b)
    deliver(b.data_to_send(), a)
    data = a.send(Update("doc", "devices", b"u"))  # FINISH goes first, in the same bytes
    events = deliver(data, b)
    assert isinstance(events[0], HandshakeComplete)
    assert events[1] == Update("doc", "devices", b"u")


def _fail_handshake(a: Connection, b: Connection) -> tuple[Connection, RemoteProtocolError]:
    """Run until one side raises; returns that side and its error."""
    src, dst = a, b
    for _ in range(3):
        data = src.data_to_send()
        try:
            deliver(data, dst)
        except RemoteProtocolError as exc:
            return dst, exc
        src, dst = dst, src
    raise AssertionError("the handshake succeeded")


def test_wrong_group_secret_is_refused_before_any_identity_is_revealed() -> None:
    stranger = credentials(ALICE_LAPTOP, group_secret=b"\x99" * 32)
    a, b = connection_pair(initiator=stranger)
    side, exc = _fail_handshake(a, b)
    assert side is b
    assert exc.close_code is CloseCode.NOT_AUTHORISED
    assert b.handshake_state is HandshakeState.ERROR
    assert b.data_to_send() == b""  # the responder never answered


def test_initiator_refuses_a_reply_from_another_group() -> None:
    # same ephemeral keys (same rng label), another group secret: the REPLY
    # cannot be opened, so the initiator learns nothing and authenticates no one
    a, _ = connection_pair()
    other_a, other_b = connection_pair(
        initiator=credentials(ALICE_LAPTOP, group_secret=b"\x55" * 32),
        responder=credentials(ALICE_PHONE, group_secret=b"\x55" * 32),
        label="pair",
    )
    a.data_to_send()
    deliver(other_a.data_to_send(), other_b)
    with pytest.raises(RemoteProtocolError):
        deliver(other_b.data_to_send(), a)
    assert a.peer_device_key is None


def test_removed_device_cannot_authenticate_even_with_the_secret() -> None:
    removed = device("old tablet")
    a, b = connection_pair(initiator=credentials(removed))
    side, exc = _fail_handshake(a, b)
    assert side is b
    assert "not a member" in str(exc)
    assert exc.close_code is CloseCode.NOT_AUTHORISED
    assert b.peer_device_key is None and b.session_id is None


def test_initiator_refuses_a_responder_it_does_not_know() -> None:
    known_to_laptop = frozenset({ALICE_LAPTOP.key})
    a, b = connection_pair(initiator=credentials(ALICE_LAPTOP, known_to_laptop))
    side, _ = _fail_handshake(a, b)
    assert side is a


def test_known_devices_is_consulted_live() -> None:
    members = {ALICE_LAPTOP.key, ALICE_PHONE.key}
    creds = Credentials(ALICE_PHONE.seed, bytes(range(32)), 7, members)
    a, b = connection_pair(responder=creds)
    deliver(a.data_to_send(), b)
    deliver(b.data_to_send(), a)
    members.discard(ALICE_LAPTOP.key)  # removed while the handshake runs
    with pytest.raises(RemoteProtocolError, match="not a member"):
        deliver(a.data_to_send(), b)


def test_epoch_mismatch_is_reported_clearly() -> None:
    a, b = connection_pair(initiator=credentials(ALICE_LAPTOP, epoch=6))
    side, exc = _fail_handshake(a, b)
    assert side is b
    assert exc.close_code is CloseCode.EPOCH_MISMATCH
    assert "epoch 6" in str(exc) and "epoch 7" in str(exc)


def test_a_device_talking_to_itself_is_refused() -> None:
    a, b = connection_pair(responder=credentials(ALICE_LAPTOP))
    _, exc = _fail_handshake(a, b)
    assert "own key" in str(exc)


def test_reflected_hello_is_refused() -> None:
    a, _ = connection_pair()
    hello = a.data_to_send()
    with pytest.raises(RemoteProtocolError, match="unexpected HELLO"):
        deliver(hello, a)


def test_reply_replayed_into_another_session_is_refused() -> None:
    a1, b1 = connection_pair(label="one")
    deliver(a1.data_to_send(), b1)
    old_reply = b1.data_to_send()
    a2, _ = connection_pair(label="two")
    a2.data_to_send()
    with pytest.raises(RemoteProtocolError):
        deliver(old_reply, a2)


def test_nothing_can_be_sent_before_the_handshake() -> None:
    a, _ = connection_pair()
    with pytest.raises(LocalProtocolError, match="handshake"):
        a.send(Update("doc", "devices", b"u"))


def test_rng_is_the_only_randomness() -> None:
    runs = []
    for _ in range(2):
        a, b = connection_pair(label="same")
        runs.append(handshake(a, b))
    assert runs[0] == runs[1]


def test_constructor_refuses_local_sharing_and_bad_rng() -> None:
    creds = credentials(ALICE_LAPTOP)
    with pytest.raises(LocalProtocolError):
        Connection(INITIATOR, creds, seeded_rng("x"), shareable=("devices", "local"))
    with pytest.raises(LocalProtocolError):
        Connection(RESPONDER, creds, lambda n: b"short")


def test_end_of_stream_during_handshake_is_reported() -> None:
    a, b = connection_pair()
    b.receive_data(a.data_to_send()[:10])
    assert b.next_event() is NEED_DATA
    b.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a frame"):
        b.next_event()
