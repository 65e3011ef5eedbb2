"""The handshake's own machine, the predicates callers use instead of comparing
states, and the catch-up rule of protocol/_state.py (issue 17, §3)."""

from __future__ import annotations

import copy

import pytest

from protocol import INITIATOR, RESPONDER, Close, HandshakeState, RemoteProtocolError, SideState
from protocol._state import (
    DigestOutcome,
    after_digests,
    answers_heartbeat,
    catch_up_done_due,
    heartbeat_refusal,
)
from protocol.frames import Frame, FrameBuffer, FrameKind
from protocol.handshake_machine import HandshakeMachine
from protocol.limits import MAX_OUTSTANDING_HEARTBEATS
from tests.protocol_helpers import (
    ALICE_LAPTOP,
    ALICE_PHONE,
    connection_pair,
    credentials,
    established,
    seeded_rng,
)

HANDSHAKE_KINDS = frozenset({FrameKind.HELLO, FrameKind.REPLY, FrameKind.FINISH})


def frame_of(data: bytes) -> Frame:
    buffer = FrameBuffer(HANDSHAKE_KINDS, 1 << 16)
    buffer.feed(data)
    frame = buffer.next_frame()
    assert frame is not None and len(buffer) == 0
    return frame


def machines() -> tuple[HandshakeMachine, HandshakeMachine]:
    initiator = HandshakeMachine(INITIATOR, credentials(ALICE_LAPTOP), seeded_rng("m/i")(32))
    responder = HandshakeMachine(RESPONDER, credentials(ALICE_PHONE), seeded_rng("m/r")(32))
    return initiator, responder


def test_the_handshake_machine_walks_its_table_to_done() -> None:
    initiator, responder = machines()
    assert initiator.hello and initiator.state is HandshakeState.AWAIT_REPLY
    assert not responder.hello and responder.state is HandshakeState.AWAIT_HELLO
    reply = responder.receive(frame_of(initiator.hello))
    assert reply.result is None and responder.state is HandshakeState.AWAIT_FINISH
    finish = initiator.receive(frame_of(reply.reply))
    assert finish.result is not None and initiator.done
    last = responder.receive(frame_of(finish.reply))
    assert last.reply == b"" and last.result is not None and responder.done
    assert finish.result.keys.session_id == last.result.keys.session_id
    assert last.result.peer_device_key == ALICE_LAPTOP.key


@pytest.mark.parametrize("which", ["hello-to-initiator", "finish-first", "hello-twice"])
def test_a_frame_out_of_turn_is_refused_and_changes_nothing(which: str) -> None:
    initiator, responder = machines()
    reply = copy.deepcopy(responder).receive(frame_of(initiator.hello)).reply
    finish = copy.deepcopy(initiator).receive(frame_of(reply)).reply
    target, data = {
        "hello-to-initiator": (initiator, initiator.hello),
        "finish-first": (responder, finish),
        "hello-twice": (responder, initiator.hello),
    }[which]
    if which == "hello-twice":
        target.receive(frame_of(data))
    before = target.state
    with pytest.raises(RemoteProtocolError):
        target.receive(frame_of(data))
    assert target.state is before


def test_can_send_and_closed_follow_the_session() -> None:
    a, b = connection_pair(label="predicates")
    assert not a.can_send and not a.closed  # handshake not done
    a, b = established("predicates")
    assert a.can_send and not a.closed
    a.send(Close(0, "bye"))
    assert not a.can_send and a.closed
    b.receive_data(b"\xff" * 8)
    with pytest.raises(RemoteProtocolError):
        b.next_event()
    assert b.our_state is SideState.ERROR and b.closed and not b.can_send


@pytest.mark.parametrize(
    ("ours", "theirs", "owed", "sent", "due"),
    [
        (SideState.LISTED, SideState.REQUESTED, 0, False, True),
        (SideState.LISTED, SideState.REQUESTED, 1, False, False),
        (SideState.LISTED, SideState.REQUESTED, 0, True, False),
        (SideState.LISTED, SideState.LISTED, 0, False, False),
        (SideState.CLOSED, SideState.REQUESTED, 0, False, False),
    ],
)
def test_catch_up_done_is_due_once_everything_asked_for_was_sent(
    ours: SideState, theirs: SideState, owed: int, sent: bool, due: bool
) -> None:
    assert catch_up_done_due(ours, theirs, owed=owed, already_sent=sent) is due


@pytest.mark.parametrize(
    ("ours", "theirs", "equal", "outcome"),
    [
        (SideState.ANNOUNCED, SideState.ANNOUNCED, True, DigestOutcome.IN_SYNC),
        (SideState.ANNOUNCED, SideState.ANNOUNCED, False, DigestOutcome.LIST),
        (SideState.CLOSED, SideState.ANNOUNCED, False, DigestOutcome.ENDING),
        (SideState.ANNOUNCED, SideState.CLOSED, False, DigestOutcome.ENDING),
    ],
)
def test_what_follows_the_digests(
    ours: SideState, theirs: SideState, equal: bool, outcome: DigestOutcome
) -> None:
    assert after_digests(ours, theirs, equal) is outcome


def test_heartbeat_rules() -> None:
    assert heartbeat_refusal(set(), 1) is None
    assert heartbeat_refusal({1}, 1) == "heartbeat 1 is already outstanding"
    full = set(range(MAX_OUTSTANDING_HEARTBEATS))
    assert heartbeat_refusal(full, MAX_OUTSTANDING_HEARTBEATS) is not None
    assert answers_heartbeat(SideState.LISTED) and not answers_heartbeat(SideState.CLOSED)
