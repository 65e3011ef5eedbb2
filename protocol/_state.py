"""The one transition table of a session Connection.

Theory of operation
-------------------
A session has two directions. Each *side* (ours, theirs) moves through the same
states, driven by the frames it sends; we apply the table to our side when we
send and to their side when a frame arrives, so one table describes both::

    HANDSHAKE --handshake done--> OPEN --CatalogueDigest--> ANNOUNCED
    ANNOUNCED --Catalogue--> LISTED --DeltaRequest--> REQUESTED
    (any of OPEN..REQUESTED) --Close--> CLOSED

Update, Heartbeat, HeartbeatAck and CatchUpDone never change a side's state;
the table lists where they are allowed. Some messages also need the *other*
side to have reached a state (the sender only knows it then, because streams are
ordered): a full Catalogue is sent only once the other side ANNOUNCED a digest
that differs, a DeltaRequest only once the other side LISTED its catalogue, a
CatchUpDone only once the other side REQUESTED. Those guards are
:data:`REQUIRES_OTHER` below. The rules for what the Connection sends by itself
live here too: once both catalogue digests are known, :func:`after_digests`
says whether the sides are in sync or our full Catalogue follows; CatchUpDone
goes out once, when :func:`catch_up_done_due` says so; a Heartbeat is answered
unless our side has closed (:func:`answers_heartbeat`), and
:func:`heartbeat_refusal` bounds our own outstanding heartbeats.

The handshake runs before any of this (HELLO, REPLY, FINISH, see
``handshake.py``); :data:`HANDSHAKE_TRANSITIONS` is its part of the table,
keyed by our role. Any error puts the whole connection in ERROR, where it stays:
nothing else changes, no further event is produced and the only thing that may
still be sent is one Close (if the session keys exist).
"""

from __future__ import annotations

import enum
from typing import Final

from .frames import FrameKind
from .limits import MAX_OUTSTANDING_HEARTBEATS
from .messages import MessageType


class Role(enum.Enum):
    """Which side of a session a connection is: the one that dialed, or the one that answered."""

    INITIATOR = "initiator"
    RESPONDER = "responder"


INITIATOR: Final = Role.INITIATOR
RESPONDER: Final = Role.RESPONDER


class HandshakeState(enum.Enum):
    """Where a connection is in the handshake (see ``HANDSHAKE_TRANSITIONS``)."""

    SEND_HELLO = "send-hello"  # initiator, before its first data_to_send()
    AWAIT_HELLO = "await-hello"  # responder
    AWAIT_REPLY = "await-reply"  # initiator
    AWAIT_FINISH = "await-finish"  # responder
    DONE = "done"
    ERROR = "error"


class SideState(enum.Enum):
    """Where one side of an open session is in the sync exchange (see ``SIDE_TRANSITIONS``)."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    ANNOUNCED = "announced"
    LISTED = "listed"
    REQUESTED = "requested"
    CLOSED = "closed"
    ERROR = "error"


# (our role, our handshake state, frame kind) -> next handshake state
HANDSHAKE_TRANSITIONS: Final[dict[tuple[Role, HandshakeState, FrameKind], HandshakeState]] = {
    (Role.INITIATOR, HandshakeState.SEND_HELLO, FrameKind.HELLO): HandshakeState.AWAIT_REPLY,
    (Role.INITIATOR, HandshakeState.AWAIT_REPLY, FrameKind.REPLY): HandshakeState.DONE,
    (Role.RESPONDER, HandshakeState.AWAIT_HELLO, FrameKind.HELLO): HandshakeState.AWAIT_FINISH,
    (Role.RESPONDER, HandshakeState.AWAIT_FINISH, FrameKind.FINISH): HandshakeState.DONE,
}

_LIVE: Final = (SideState.OPEN, SideState.ANNOUNCED, SideState.LISTED, SideState.REQUESTED)

# (side state, message type) -> next side state; anything missing is a violation
SIDE_TRANSITIONS: Final[dict[tuple[SideState, MessageType], SideState]] = {
    (SideState.OPEN, MessageType.CATALOGUE_DIGEST): SideState.ANNOUNCED,
    (SideState.ANNOUNCED, MessageType.CATALOGUE): SideState.LISTED,
    (SideState.LISTED, MessageType.DELTA_REQUEST): SideState.REQUESTED,
    **{
        (state, kind): state
        for state in _LIVE
        for kind in (
            MessageType.UPDATE,
            MessageType.HEARTBEAT,
            MessageType.HEARTBEAT_ACK,
            MessageType.CATCH_UP_DONE,
        )
    },
    **{(state, MessageType.CLOSE): SideState.CLOSED for state in _LIVE},
}

# message type -> the states the *other* side must be in for it to be sent
REQUIRES_OTHER: Final[dict[MessageType, frozenset[SideState]]] = {
    MessageType.CATALOGUE: frozenset({SideState.ANNOUNCED, SideState.LISTED, SideState.REQUESTED}),
    MessageType.DELTA_REQUEST: frozenset({SideState.LISTED, SideState.REQUESTED}),
    MessageType.CATCH_UP_DONE: frozenset({SideState.REQUESTED}),
}


def next_side_state(state: SideState, other: SideState, kind: MessageType) -> SideState | None:
    """The side's next state after sending *kind*, or None if that is a violation."""
    required = REQUIRES_OTHER.get(kind)
    if required is not None and other not in required:
        return None
    return SIDE_TRANSITIONS.get((state, kind))


def catch_up_done_due(ours: SideState, theirs: SideState, *, owed: int,
                      already_sent: bool) -> bool:
    """Whether CatchUpDone goes out now: the peer REQUESTED, every document it asked
    for was answered (*owed* is how many were not), it was not sent before, and our
    side has not sent Close (nothing follows a Close; the peer sees the Close)."""
    return (ours is not SideState.CLOSED and theirs is SideState.REQUESTED
            and owed == 0 and not already_sent)


class DigestOutcome(enum.Enum):
    """What follows once both sides' catalogue digests are known."""

    IN_SYNC = "in-sync"
    """Equal digests: nothing to catch up in either direction (CatchUpDone event)."""
    LIST = "list"
    """They differ: our full Catalogue follows, and our side moves to LISTED."""
    ENDING = "ending"
    """They differ, but one side has sent Close (the digests crossed it): nothing more
    is listed; the next session catches up."""


def after_digests(ours: SideState, theirs: SideState, equal: bool) -> DigestOutcome:
    """The rule applied once, when the second of the two digests becomes known."""
    if equal:
        return DigestOutcome.IN_SYNC
    if next_side_state(ours, theirs, MessageType.CATALOGUE) is None:
        return DigestOutcome.ENDING
    return DigestOutcome.LIST


def answers_heartbeat(ours: SideState) -> bool:
    """A received Heartbeat is acknowledged unless our side has sent Close."""
    return ours is not SideState.CLOSED


def heartbeat_refusal(outstanding: frozenset[int] | set[int], counter: int) -> str | None:
    """Why we may not send Heartbeat *counter* now, or None if we may."""
    if len(outstanding) >= MAX_OUTSTANDING_HEARTBEATS:
        return "too many unacknowledged heartbeats"
    if counter in outstanding:
        return f"heartbeat {counter} is already outstanding"
    return None
