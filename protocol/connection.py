"""The session Connection: one object per byte stream, sans-IO, h11 style.

How a node drives it::

    conn = Connection(INITIATOR, credentials, os.urandom)      # or RESPONDER
    await stream.send_all(conn.data_to_send())                 # the initiator's HELLO
    while True:
        conn.receive_data(await stream.receive_some())         # b"" at end of stream
        while (event := conn.next_event()) is not NEED_DATA:
            ...  # HandshakeComplete -> conn.send(Catalogue(...)),
                 # CatalogueReceived -> conn.send(DeltaRequest(...)),
                 # StateVectorReceived -> conn.send(Update(delta)), Update -> apply, ...
        if out := conn.data_to_send():
            await stream.send_all(out)

``send(message)`` returns the bytes to write for *message*, preceded by any
bytes the Connection queued by itself (handshake replies, the full catalogue
when digests differ, HeartbeatAck, CatchUpDone), so the stream order is always
right; ``data_to_send()`` drains those automatic bytes alone. After
``receive_data(b"")`` the next event at a frame boundary is ConnectionClosed,
returned once; stop reading then.

Guarantees: whatever bytes arrive, ``next_event()`` returns events or raises
:class:`RemoteProtocolError`, after which the connection is in ERROR and
nothing else has changed. A refused ``send()`` raises
:class:`LocalProtocolError` and changes nothing. Nothing about a ``local``
document, or of a sync class this connection does not share, can be sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from . import keys
from ._state import (
    SIDE_TRANSITIONS,
    DigestOutcome,
    HandshakeState,
    Role,
    SideState,
    after_digests,
    answers_heartbeat,
    catch_up_done_due,
    heartbeat_refusal,
    next_side_state,
)
from .errors import CloseCode, LocalProtocolError, RemoteProtocolError
from .events import (
    CatalogueReceived,
    ConnectionClosed,
    Event,
    HandshakeComplete,
    NeedData,
    StateVectorReceived,
)
from .frames import Frame, FrameBuffer, FrameKind, frame_header, next_event_from
from .handshake import MAX_HANDSHAKE_FRAME_BYTES, Credentials, HandshakeResult
from .handshake_machine import HandshakeMachine
from .keys import DIGEST_BYTES
from .limits import AEAD_TAG_BYTES, MAX_FRAME_BYTES
from .messages import (
    DEVICES,
    LOCAL,
    SYNC_CLASS_CODES,
    Catalogue,
    CatalogueDigest,
    CatalogueEntry,
    CatchUpDone,
    Close,
    DeltaRequest,
    Heartbeat,
    HeartbeatAck,
    Message,
    MessageType,
    Update,
    decode_message,
    doc_id_key,
    encode_catalogue_entry,
    encode_message,
)

_HANDSHAKE_KINDS: Final = frozenset({FrameKind.HELLO, FrameKind.REPLY, FrameKind.FINISH})
_SEALED_KINDS: Final = frozenset({FrameKind.SEALED})
_MIN_FRAME_BYTES: Final = 1024

_TYPES: Final[dict[type, MessageType]] = {
    CatalogueDigest: MessageType.CATALOGUE_DIGEST,
    Catalogue: MessageType.CATALOGUE,
    DeltaRequest: MessageType.DELTA_REQUEST,
    Update: MessageType.UPDATE,
    CatchUpDone: MessageType.CATCH_UP_DONE,
    Heartbeat: MessageType.HEARTBEAT,
    HeartbeatAck: MessageType.HEARTBEAT_ACK,
    Close: MessageType.CLOSE,
}
_AUTOMATIC: Final = (CatalogueDigest, CatchUpDone, HeartbeatAck)


@dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    """A snapshot of a connection's counters (``Connection.statistics()``)."""

    bytes_buffered: int
    bytes_queued: int
    frames_sent: int
    frames_received: int
    heartbeats_outstanding: int


class SealedChannel:
    """The session keys and sequence numbers of both directions: every frame after
    the handshake is sealed with the next send number and opened with the next
    receive number (so replays and reflections fail)."""

    __slots__ = ("recv_key", "recv_seq", "send_key", "send_seq")

    def __init__(self, send_key: bytes, recv_key: bytes) -> None:
        self.send_key = send_key
        self.recv_key = recv_key
        self.send_seq = 0
        self.recv_seq = 0

    @classmethod
    def for_role(cls, role: Role, session: keys.SessionKeys) -> SealedChannel:
        if role is Role.INITIATOR:
            return cls(session.initiator_to_responder, session.responder_to_initiator)
        return cls(session.responder_to_initiator, session.initiator_to_responder)

    def seal(self, plaintext: bytes) -> bytes:
        """The SEALED frame (header and body) carrying *plaintext*."""
        header = frame_header(FrameKind.SEALED, len(plaintext) + AEAD_TAG_BYTES)
        sealed = keys.seal(self.send_key, self.send_seq, plaintext, header)
        self.send_seq += 1
        return header + sealed

    def open(self, frame: Frame) -> bytes:
        """The plaintext of the next SEALED *frame*; RemoteProtocolError if it does not
        open with the next receive number (the caller counts it once handled)."""
        return keys.open_sealed(self.recv_key, self.recv_seq, frame.body, frame.header, "frame")


@dataclass(slots=True)
class CatchUpLedger:
    """What each side listed and asked for, and where catch-up stands."""

    our_catalogue: dict[str, CatalogueEntry] = field(default_factory=dict)
    their_catalogue: dict[str, CatalogueEntry] = field(default_factory=dict)
    our_digest: bytes | None = None
    their_digest: bytes | None = None
    compared: bool = False
    """Both digests are known and were compared."""
    owed: set[str] = field(default_factory=set)
    """Docs the peer asked for that we have not answered."""
    awaiting: set[str] = field(default_factory=set)
    """Docs we asked for that the peer has not answered."""
    done_sent: bool = False
    done_received: bool = False


class Connection:
    """One end of a session between two devices of the same person.

    *rng* returns that many random bytes (``os.urandom``); the Connection calls
    it once, in the constructor, for its ephemeral key. *shareable* names the
    sync classes this session carries (``"devices"`` between a person's devices,
    ``"commons"`` with a Commons peer); ``"local"`` is refused.
    """

    def __init__(
        self,
        role: Role,
        credentials: Credentials,
        rng: Callable[[int], bytes],
        *,
        shareable: Iterable[str] = (DEVICES,),
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        classes = frozenset(shareable)
        if LOCAL in classes:
            raise LocalProtocolError("a connection can never share 'local' documents")
        if not classes or not classes <= SYNC_CLASS_CODES.keys():
            raise LocalProtocolError(f"unknown sync classes in {sorted(classes)}")
        if not _MIN_FRAME_BYTES <= max_frame_bytes <= MAX_FRAME_BYTES:
            raise LocalProtocolError(
                f"max_frame_bytes must be within {_MIN_FRAME_BYTES}..{MAX_FRAME_BYTES}"
            )
        ephemeral = rng(32)
        if len(ephemeral) != 32:
            raise LocalProtocolError("rng returned the wrong number of bytes")
        self._role = role
        self._shareable = classes
        self._max_frame_bytes = max_frame_bytes
        # transport: bytes in and out, events, counters
        self._buffer = FrameBuffer(_HANDSHAKE_KINDS, MAX_HANDSHAKE_FRAME_BYTES)
        self._outbox = bytearray()
        self._events: deque[Event] = deque()
        self._error = False
        self._closed_reported = False
        self._frames_sent = 0
        self._frames_received = 0
        # the handshake, then the sealed channel it establishes
        self._handshake = HandshakeMachine(role, credentials, ephemeral)
        self._channel: SealedChannel | None = None
        self.peer_device_key: bytes | None = None
        self.session_id: bytes | None = None
        # the two sides' states (_state.SIDE_TRANSITIONS)
        self._ours = SideState.HANDSHAKE
        # What our side had announced when we sent Close: the peer may still send
        # what that allowed, having not yet read the Close (frames cross).
        self._ours_before_close = SideState.HANDSHAKE
        self._theirs = SideState.HANDSHAKE
        # catch-up bookkeeping and heartbeats
        self._sync = CatchUpLedger()
        self._heartbeats: set[int] = set()
        if self._handshake.hello:
            self._outbox += self._handshake.hello
            self._frames_sent += 1

    # --- introspection ---------------------------------------------------------

    @property
    def role(self) -> Role:
        return self._role

    @property
    def handshake_state(self) -> HandshakeState:
        return HandshakeState.ERROR if self._error else self._handshake.state

    @property
    def our_state(self) -> SideState:
        return SideState.ERROR if self._error else self._ours

    @property
    def their_state(self) -> SideState:
        return SideState.ERROR if self._error else self._theirs

    @property
    def can_send(self) -> bool:
        """Whether a message other than Close may be sent now: the handshake is done,
        nothing failed, and our side has not sent Close."""
        return not self._error and self._handshake.done and self._ours is not SideState.CLOSED

    @property
    def closed(self) -> bool:
        """Whether our side is done sending: it sent Close, or the connection failed
        (then one Close may still go out, if the session keys exist)."""
        return self._error or self._ours is SideState.CLOSED

    @property
    def in_sync(self) -> bool:
        """Both catalogue digests were equal: nothing to catch up in either direction."""
        return self._sync.compared and self._sync.our_digest == self._sync.their_digest

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            bytes_buffered=len(self._buffer),
            bytes_queued=len(self._outbox),
            frames_sent=self._frames_sent,
            frames_received=self._frames_received,
            heartbeats_outstanding=len(self._heartbeats),
        )

    # --- receiving ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the stream; ``b""`` means the stream ended."""
        if self._error:
            raise LocalProtocolError("the connection is in the ERROR state")
        self._buffer.feed(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA; RemoteProtocolError if the peer misbehaved."""
        if self._error:
            raise RemoteProtocolError("the connection is in the ERROR state")
        try:
            event = next_event_from(self._buffer, self._events, self._receive_frame)
        except RemoteProtocolError:
            self._error = True
            self._events.clear()
            raise
        if event is not None:
            return event
        if self._closed_reported:
            raise LocalProtocolError("the stream has ended; stop reading events")
        self._closed_reported = True
        return ConnectionClosed()

    def _receive_frame(self, frame: Frame) -> None:
        self._handle_frame(frame)
        self._frames_received += 1

    def _handle_frame(self, frame: Frame) -> None:
        if self._channel is None:
            self._handle_handshake(frame)
            return
        message = decode_message(self._channel.open(frame))
        self._receive_message(message)
        self._channel.recv_seq += 1

    def _handle_handshake(self, frame: Frame) -> None:
        step = self._handshake.receive(frame)
        if step.reply:
            self._outbox += step.reply
            self._frames_sent += 1
        if step.result is not None:
            self._established(step.result)

    def _established(self, result: HandshakeResult) -> None:
        self._channel = SealedChannel.for_role(self._role, result.keys)
        self.peer_device_key = result.peer_device_key
        self.session_id = result.keys.session_id
        self._ours = self._theirs = SideState.OPEN
        self._buffer.restrict(_SEALED_KINDS, self._max_frame_bytes)
        self._events.append(
            HandshakeComplete(result.peer_device_key, result.epoch, result.keys.session_id)
        )

    def _receive_message(self, message: Message) -> None:
        """Validate *message* from the peer, then (and only then) apply it."""
        kind = _TYPES[type(message)]
        ours = self._ours_before_close if self._ours is SideState.CLOSED else self._ours
        new_state = next_side_state(self._theirs, ours, kind)
        if new_state is None:
            raise RemoteProtocolError(
                f"peer sent {kind.name} in state {self._theirs.value} (ours: {ours.value})"
            )
        match message:
            case CatalogueDigest(digest=value):
                self._theirs = new_state
                self._sync.their_digest = value
                self._compare_digests()
            case Catalogue(entries=entries):
                encoded = [encode_catalogue_entry(e) for e in entries]
                if keys.catalogue_digest(encoded) != self._sync.their_digest:
                    raise RemoteProtocolError("peer's catalogue does not match its digest")
                if self.in_sync:
                    raise RemoteProtocolError("peer listed its catalogue though digests match")
                for entry in entries:
                    self._check_received_class(entry.sync_class)
                differing = tuple(
                    e.doc_id
                    for e in entries
                    if (mine := self._sync.our_catalogue.get(e.doc_id)) is None
                    or mine.sv_digest != e.sv_digest
                )
                self._theirs = new_state
                self._sync.their_catalogue = {e.doc_id: e for e in entries}
                self._events.append(CatalogueReceived(entries, differing))
            case DeltaRequest(state_vectors=items):
                for item in items:
                    mine = self._sync.our_catalogue.get(item.doc_id)
                    if mine is None or mine.sync_class != item.sync_class:
                        raise RemoteProtocolError(
                            f"peer asked for document {item.doc_id!r}, which we did not offer"
                        )
                self._theirs = new_state
                self._sync.owed = {item.doc_id for item in items}
                self._events.extend(
                    StateVectorReceived(i.doc_id, i.sync_class, i.state_vector) for i in items
                )
                self._maybe_send_done()
            case Update(sync_class=sync_class, doc_id=doc_id):
                self._check_received_class(sync_class)
                self._theirs = new_state
                self._sync.awaiting.discard(doc_id)
                self._events.append(message)
            case CatchUpDone():
                if self._sync.done_received:
                    raise RemoteProtocolError("peer sent CatchUpDone twice")
                if self._sync.awaiting:
                    raise RemoteProtocolError(
                        f"peer ended catch-up without answering {len(self._sync.awaiting)} requests"
                    )
                self._sync.done_received = True
                self._events.append(message)
            case Heartbeat(counter=counter):
                self._events.append(message)
                if answers_heartbeat(self._ours):
                    self._queue(HeartbeatAck(counter))
            case HeartbeatAck(counter=counter):
                if counter not in self._heartbeats:
                    raise RemoteProtocolError(f"peer acknowledged unknown heartbeat {counter}")
                self._heartbeats.discard(counter)
                self._events.append(message)
            case Close():
                self._theirs = new_state
                self._events.append(message)

    def _check_received_class(self, sync_class: str) -> None:
        if sync_class not in self._shareable:
            raise RemoteProtocolError(
                f"peer sent a {sync_class!r} document on a session sharing "
                f"{sorted(self._shareable)}"
            )

    # --- sending -------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes the Connection queued by itself; write them to the stream."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def send(self, message: Message) -> bytes:
        """Encode and seal *message*; returns every byte to write, in order.

        The node sends Catalogue (once), DeltaRequest (once, after
        CatalogueReceived), Update, Heartbeat and Close. LocalProtocolError if
        the message is not allowed now or concerns a document this connection
        must not share; nothing changes then.
        """
        if self._error:
            if (
                isinstance(message, Close)
                and self._channel is not None
                and self._ours is not SideState.CLOSED
            ):
                plaintext = self._encode(message)
                self._ours = SideState.CLOSED
                self._seal(plaintext)
                return self.data_to_send()
            raise LocalProtocolError("the connection is in the ERROR state; only Close is allowed")
        if not self._handshake.done:
            raise LocalProtocolError("the handshake is not complete")
        if isinstance(message, _AUTOMATIC):
            raise LocalProtocolError(f"{type(message).__name__} is sent by the Connection itself")
        kind = _TYPES.get(type(message))
        if kind is MessageType.CATALOGUE:
            kind = MessageType.CATALOGUE_DIGEST  # the full list follows only on a mismatch
        if kind is None:
            raise LocalProtocolError(f"not a message: {message!r}")
        new_state = next_side_state(self._ours, self._theirs, kind)
        if new_state is None:
            raise LocalProtocolError(
                f"cannot send {kind.name} in state {self._ours.value} (peer: {self._theirs.value})"
            )
        match message:
            case Catalogue(entries=entries):
                for entry in entries:
                    self._check_sendable(entry.doc_id, entry.sync_class)
                    if len(entry.sv_digest) != DIGEST_BYTES:
                        raise LocalProtocolError("sv_digest must be 32 bytes")
                ordered = tuple(sorted(entries, key=lambda e: doc_id_key(e.doc_id)))
                catalogue = Catalogue(ordered)
                self._encode(catalogue)  # checks ids, order, limits
                digest = keys.catalogue_digest(encode_catalogue_entry(e) for e in ordered)
                plaintext = self._encode(CatalogueDigest(digest))
                self._ours = new_state
                self._sync.our_catalogue = {e.doc_id: e for e in ordered}
                self._sync.our_digest = digest
                self._seal(plaintext)
                self._compare_digests()
            case DeltaRequest(state_vectors=items):
                for item in items:
                    self._check_sendable(item.doc_id, item.sync_class)
                    theirs = self._sync.their_catalogue.get(item.doc_id)
                    if theirs is None or theirs.sync_class != item.sync_class:
                        raise LocalProtocolError(
                            f"the peer did not offer {item.doc_id!r} as {item.sync_class!r}"
                        )
                request = DeltaRequest(tuple(sorted(items, key=lambda i: doc_id_key(i.doc_id))))
                plaintext = self._encode(request)
                self._ours = new_state
                self._sync.awaiting = {item.doc_id for item in items}
                self._seal(plaintext)
            case Update(doc_id=doc_id, sync_class=sync_class):
                self._check_sendable(doc_id, sync_class)
                plaintext = self._encode(message)
                self._seal(plaintext)
                self._sync.owed.discard(doc_id)
                self._maybe_send_done()
            case Heartbeat(counter=counter):
                refusal = heartbeat_refusal(self._heartbeats, counter)
                if refusal is not None:
                    raise LocalProtocolError(refusal)
                plaintext = self._encode(message)
                self._heartbeats.add(counter)
                self._seal(plaintext)
            case Close():
                plaintext = self._encode(message)
                self._ours_before_close = self._ours
                self._ours = new_state
                self._seal(plaintext)
        return self.data_to_send()

    def _check_sendable(self, doc_id: str, sync_class: str) -> None:
        """The choke point: nothing about a local or unshared document leaves here."""
        if sync_class == LOCAL:
            raise LocalProtocolError(f"refusing to send anything about 'local' document {doc_id!r}")
        if sync_class not in self._shareable:
            raise LocalProtocolError(f"sync class {sync_class!r} is not shared on this connection")
        listed = self._sync.our_catalogue.get(doc_id)
        if listed is not None and listed.sync_class != sync_class:
            raise LocalProtocolError(
                f"document {doc_id!r} was listed as {listed.sync_class!r}, not {sync_class!r}"
            )

    def _compare_digests(self) -> None:
        if self._sync.compared or self._sync.our_digest is None or self._sync.their_digest is None:
            return
        self._sync.compared = True
        outcome = after_digests(self._ours, self._theirs,
                                self._sync.our_digest == self._sync.their_digest)
        if outcome is DigestOutcome.IN_SYNC:
            self._events.append(CatchUpDone())
        elif outcome is DigestOutcome.LIST:
            self._ours = SIDE_TRANSITIONS[(self._ours, MessageType.CATALOGUE)]
            self._queue(Catalogue(tuple(self._sync.our_catalogue.values())))

    def _maybe_send_done(self) -> None:
        if catch_up_done_due(self._ours, self._theirs, owed=len(self._sync.owed),
                             already_sent=self._sync.done_sent):
            self._sync.done_sent = True
            self._queue(CatchUpDone())

    def _queue(self, message: Message) -> None:
        self._seal(self._encode(message))

    def _encode(self, message: Message) -> bytes:
        plaintext = encode_message(message)
        if len(plaintext) + AEAD_TAG_BYTES > self._max_frame_bytes:
            raise LocalProtocolError(
                f"message of {len(plaintext)} bytes does not fit in a frame of at most "
                f"{self._max_frame_bytes} bytes",
                CloseCode.TOO_LARGE,
            )
        return plaintext

    def _seal(self, plaintext: bytes) -> None:
        if self._channel is None:  # unreachable: every caller checked the handshake
            raise LocalProtocolError("the handshake is not complete")
        self._outbox += self._channel.seal(plaintext)
        self._frames_sent += 1
