"""The handshake's own state machine: HELLO, REPLY, FINISH and nothing else.

The frames and their cryptography are pure functions in :mod:`protocol.handshake`;
this object holds what one handshake keeps between them (the ephemeral key until
it is used, the pending transcript) and moves through
:data:`protocol._state.HANDSHAKE_TRANSITIONS`, the one table of its transitions.
A :class:`~protocol.connection.Connection` owns one and hands it the frames that
arrive before the session keys exist; once it reports a :class:`HandshakeResult`
the Connection seals everything after.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._state import HANDSHAKE_TRANSITIONS, HandshakeState, Role
from .errors import RemoteProtocolError
from .frames import Frame, FrameKind
from .handshake import (
    Credentials,
    HandshakeResult,
    InitiatorPending,
    ResponderPending,
    make_hello,
    make_reply,
    read_finish,
    read_reply,
)


@dataclass(frozen=True, slots=True)
class HandshakeStep:
    """What one received handshake frame produced: a frame to send back (or b"") and,
    once the handshake is complete, its result."""

    reply: bytes
    result: HandshakeResult | None


class HandshakeMachine:
    """One side of one handshake. An initiator's HELLO is ready at construction
    (:attr:`hello`); each received frame goes to :meth:`receive`."""

    __slots__ = ("_creds", "_ephemeral", "_initiator", "_responder", "_role", "hello", "state")

    def __init__(self, role: Role, credentials: Credentials, ephemeral: bytes) -> None:
        self._role = role
        self._creds = credentials
        self._ephemeral: bytes | None = ephemeral
        self._initiator: InitiatorPending | None = None
        self._responder: ResponderPending | None = None
        self.hello = b""
        """The initiator's HELLO frame (b"" for a responder)."""
        self.state = HandshakeState.AWAIT_HELLO
        if role is Role.INITIATOR:
            self.hello, self._initiator = make_hello(credentials, ephemeral)
            self._ephemeral = None
            self.state = self._next(HandshakeState.SEND_HELLO, FrameKind.HELLO)

    @property
    def done(self) -> bool:
        return self.state is HandshakeState.DONE

    def _next(self, state: HandshakeState, kind: FrameKind) -> HandshakeState:
        next_state = HANDSHAKE_TRANSITIONS.get((self._role, state, kind))
        if next_state is None:
            raise RemoteProtocolError(
                f"unexpected {kind.name} frame in handshake state {state.value}"
            )
        return next_state

    def receive(self, frame: Frame) -> HandshakeStep:
        """Apply the peer's *frame*; RemoteProtocolError (state unchanged) if it is not
        the frame the table expects now or does not verify."""
        next_state = self._next(self.state, frame.kind)
        # The transition table admits each frame once; the checks below restate
        # that without an assert (remote input must never reach one).
        if frame.kind is FrameKind.HELLO:
            if self._ephemeral is None:
                raise RemoteProtocolError("a second HELLO")
            reply, self._responder = make_reply(self._creds, frame, self._ephemeral)
            self._ephemeral = None
            step = HandshakeStep(reply, None)
        elif frame.kind is FrameKind.REPLY:
            if self._initiator is None:
                raise RemoteProtocolError("a REPLY to no HELLO")
            finish, result = read_reply(self._creds, self._initiator, frame)
            self._initiator = None
            step = HandshakeStep(finish, result)
        else:
            if self._responder is None:
                raise RemoteProtocolError("a FINISH to no REPLY")
            step = HandshakeStep(b"", read_finish(self._creds, self._responder, frame))
            self._responder = None
        self.state = next_state
        return step
