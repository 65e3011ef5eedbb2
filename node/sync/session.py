"""One sync session: a protocol Connection driven over a trio byte stream.

Theory of operation
-------------------
Three tasks share a session: the *reader* feeds bytes to the Connection and
acts on its events; the *writer* is the only task that writes to the stream,
taking already-sealed bytes from an ordered, bounded channel (so sealing order
is wire order) and coalescing whatever is queued into one write; the *keeper*
sends heartbeats and closes the session when the peer has been silent for
``idle_timeout_s`` or the handshake took longer than ``HANDSHAKE_TIMEOUT_S``.

What the session says about documents comes from its *documents*
(:class:`~node.sync.documents.SessionDocuments`): between a person's devices
that is :class:`~node.sync.documents.DeviceDocuments` (a DocStore and a Group,
the default); the Commons server and a node's Commons client bring their own.
After the handshake the session offers the documents' catalogue, requests what
they want of the peer's, answers the peer's requests with their payloads,
hands each received Update to them, and from then on pushes what they report
live. The reader handles one event at a time, so the peer's frames are handled
in the order they were sent: the HeartbeatAck the Connection returns for a
Heartbeat is produced only after everything before it was handled, and
:meth:`SyncSession.wait_acknowledged` turns that into "the peer has taken all
I sent".

Anything the peer sends that the protocol or the documents refuse ends the
session with a Close, queued behind what was already sealed (the peer reads
its reason); the documents keep whatever was validly applied before. A peer
that reads too slowly is dropped once ``max_queued_frames`` sealed frames wait,
never buffered without bound; a new session catches up through the catalogue.
Answers to the peer's requests are paced instead: while half the queue is full
the reader waits for the writer (and stops reading), so a catch-up of any size
over a slow link completes; a peer that stops reading is cut by the write
deadline.
"""

from __future__ import annotations

import enum
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from crdt import DocStore, SyncClass
from protocol import (
    INITIATOR,
    NEED_DATA,
    Catalogue,
    CatalogueReceived,
    CatchUpDone,
    Close,
    CloseCode,
    Connection,
    ConnectionClosed,
    DeltaRequest,
    HandshakeComplete,
    Heartbeat,
    HeartbeatAck,
    LocalProtocolError,
    ProtocolError,
    Role,
    StateVectorReceived,
    Update,
)
from protocol.limits import HANDSHAKE_TIMEOUT_S, HEARTBEAT_INTERVAL_S, IDLE_TIMEOUT_S

from ..errors import MirrorError
from ..identity import device_id_for
from .documents import ArrivalHook, DeviceDocuments, SessionDocuments
from .group import Group
from .limits import CLOSE_GRACE_S, MAX_QUEUED_WRITES, READ_BYTES, WRITE_TIMEOUT_S

log = logging.getLogger("mirror.sync")

_session_numbers = itertools.count(1)


class SessionOutcome(enum.Enum):
    """How a session the sync service ran ended, as far as dialing cares."""

    ENDED = "ended"
    """Ended (cleanly or not) with a peer: dial again later."""
    SELF = "self"
    """The peer was this device itself: never dial that address again."""
    DUPLICATE = "duplicate"
    """Another session with the same peer was kept: back off for longer."""


class SessionError(MirrorError):
    """A session ended abnormally (the message says why; it is logged, not shown).

    ``protocol_error`` is the protocol's error that ended it, if one did: callers
    decide on its type (e.g. :class:`protocol.PeerIsThisDevice`), never on the text."""

    def __init__(self, message: str, *, protocol_error: ProtocolError | None = None) -> None:
        super().__init__(message)
        self.protocol_error = protocol_error


@dataclass
class SessionStatistics:
    """One session's counters and times."""

    peer_device_id: str = ""
    address: str = ""
    connected_at: float = 0.0
    caught_up_at: float | None = None
    last_received_at: float = 0.0
    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    updates_in: int = 0
    updates_out: int = 0
    docs_received: set[str] = field(default_factory=set)


class SyncSession:
    """Drive one session until the peer leaves, misbehaves or goes silent.

    ``SyncSession(store, group, stream, role)`` syncs a person's devices
    (:class:`~node.sync.documents.DeviceDocuments` of *classes* at *epoch*,
    calling *on_update* after each applied update). Any other document side
    passes ``documents=`` instead, with *store* and *group* None.
    """

    def __init__(
        self,
        store: DocStore | None,
        group: Group | None,
        stream: trio.abc.Stream,
        role: Role,
        *,
        documents: SessionDocuments | None = None,
        address: str = "",
        classes: Iterable[SyncClass] = (SyncClass.DEVICES,),
        on_update: ArrivalHook | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        epoch: int | None = None,
        max_queued_frames: int = MAX_QUEUED_WRITES,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
    ) -> None:
        if documents is None:
            if store is None or group is None:
                raise TypeError("a session needs a store and a group, or documents=")
            documents = DeviceDocuments(
                store, group, classes=classes, epoch=epoch, on_update=on_update
            )
        self.documents = documents
        self.stream = stream
        self.role = role
        self.conn = Connection(
            role,
            documents.credentials(),
            rng,
            shareable=documents.shareable,
            max_frame_bytes=documents.max_frame_bytes,
        )
        # A unique origin per session: pycrdt reports hash(origin) to observers.
        self.origin = f"mirror.sync:{next(_session_numbers)}:{os.urandom(4).hex()}"
        self.idle_timeout_s = idle_timeout_s
        self.stats = SessionStatistics(address=address)
        self.peer_key: bytes | None = None
        self.epoch: int | None = None
        """The group epoch the handshake ran at (None until it completed)."""
        self.peer_close: Close | None = None
        """The Close the peer sent, if it sent one (its code and reason)."""
        self.handshake_done = trio.Event()
        self.caught_up = trio.Event()
        self._send, self._receive = trio.open_memory_channel[bytes](max_queued_frames)
        # Answers to the peer's requests wait while this many frames are queued, so a
        # large catch-up over a slow link is paced by the peer, not dropped; live
        # pushes keep the other half of the queue.
        self._answer_high_water = max(1, max_queued_frames // 2)
        self._wrote = trio.Event()  # set (and replaced) after each write
        self._last_wrote_at = 0.0
        self._paced = False  # the reader is waiting for the writer (see _room_to_answer)
        self._heartbeats = itertools.count(1)
        self._ack_waiters: dict[int, trio.Event] = {}
        self._acked: set[int] = set()
        self._writer_done = trio.Event()
        self._scope: trio.CancelScope | None = None
        self._overflow = False
        self._closing = False
        self._finished = False
        self._ended_by: str | None = None
        self._failure: BaseException | None = None

    # ------------------------------------------------------------------ public

    @property
    def peer_device_id(self) -> str:
        return device_id_for(self.peer_key) if self.peer_key else ""

    async def run(self) -> None:
        """Run the session to its end; raises SessionError if it ended abnormally."""
        self.stats.connected_at = self.stats.last_received_at = trio.current_time()
        try:
            with self.documents.live(self):
                async with trio.open_nursery() as nursery:
                    self._scope = nursery.cancel_scope
                    nursery.start_soon(self._guard, self._writer, nursery.cancel_scope)
                    nursery.start_soon(self._guard, self._keeper, nursery.cancel_scope)
                    self._flush()
                    await self._guard(self._reader, nursery.cancel_scope)
                    nursery.cancel_scope.cancel()
        finally:
            self._finished = True
            for waiter in self._ack_waiters.values():
                waiter.set()
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()
        if isinstance(self._failure, ProtocolError):
            raise SessionError(f"protocol: {self._failure}",
                               protocol_error=self._failure) from self._failure
        if self._failure is not None:
            raise SessionError(str(self._failure) or type(self._failure).__name__)
        if self._ended_by is not None:
            raise SessionError(self._ended_by)
        if self._overflow:
            raise SessionError("peer too slow: send queue full")

    async def _guard(
        self, task: Callable[[trio.CancelScope], Awaitable[None]], scope: trio.CancelScope
    ) -> None:
        """Run one of the session's tasks; its failure ends the whole session."""
        try:
            await task(scope)
        except ProtocolError as exc:
            self._failure = self._failure or exc
            await self._close_after(exc)
            scope.cancel()
        except (SessionError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.TooSlowError, OSError) as exc:
            self._failure = self._failure or exc
            scope.cancel()
        except Exception as exc:  # a bug of ours: it ends this session, never the service
            log.exception("session with %s failed", self.peer_device_id or self.stats.address)
            self._failure = self._failure or SessionError(
                f"internal error ({type(exc).__name__}); see the log")
            await self._close_after(
                LocalProtocolError("internal error", CloseCode.INTERNAL_ERROR))
            scope.cancel()

    def close_soon(self, reason: str = "", code: CloseCode = CloseCode.GOING_AWAY) -> None:
        """Ask the session to end cleanly (Close, then end of stream)."""
        if self._closing or not self.conn.can_send:
            self._closing = True
            self._send.close()
            return
        self._closing = True
        try:
            self._queue(self.conn.send(Close(int(code), reason[:200])))
        except ProtocolError:
            pass
        self._send.close()

    def end_soon(self, reason: str, code: CloseCode = CloseCode.NOT_AUTHORISED) -> None:
        """End the session whatever the peer does: a Close saying *reason* goes out
        behind what is already sealed, and ``CLOSE_GRACE_S`` later the session is
        over even if the peer neither reads nor hangs up (``run`` then raises
        SessionError(*reason*)). For a peer that may no longer be served at all."""
        self._ended_by = self._ended_by or reason
        self.close_soon(reason, code)
        if self._scope is not None and not self._finished:
            self._scope.deadline = min(self._scope.deadline, trio.current_time() + CLOSE_GRACE_S)

    def push(self, message: Update) -> None:
        """Send *message* now (a live change, or a whole document that appeared meanwhile).

        Nothing is sent before the handshake (the catalogue will carry it) nor
        once the session is closing.
        """
        if not self.handshake_done.is_set() or self._closing:
            return
        if self.conn.closed:
            return
        try:
            self._queue(self.conn.send(message))
            self.stats.updates_out += 1
        except LocalProtocolError as exc:
            log.warning("update for %s not sent: %s", message.doc_id, exc)

    async def wait_acknowledged(self) -> bool:
        """Send a Heartbeat and wait for the peer's HeartbeatAck.

        A peer handles frames in order, so the answer means it has handled
        everything this session sent before. False if the session cannot send
        now or ended first.
        """
        if self._finished or self._closing or not self.handshake_done.is_set():
            return False
        counter = next(self._heartbeats)
        try:
            data = self.conn.send(Heartbeat(counter))
        except LocalProtocolError:
            return False
        waiter = self._ack_waiters[counter] = trio.Event()
        self._queue(data)
        try:
            await waiter.wait()
        finally:
            self._ack_waiters.pop(counter, None)
        return counter in self._acked

    def pending(self) -> int:
        """Sealed frames waiting to be written."""
        return self._send.statistics().current_buffer_used

    # ------------------------------------------------------------------ reading

    async def _reader(self, scope: trio.CancelScope) -> None:
        while True:
            try:
                data = await self.stream.receive_some(READ_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self.stats.bytes_in += len(data)
            self.stats.last_received_at = trio.current_time()
            self.conn.receive_data(bytes(data))
            while True:
                event = self.conn.next_event()
                if event is NEED_DATA:
                    break
                self.stats.frames_in += 1
                self.documents.observe(event)
                if isinstance(event, Close):
                    self.peer_close = event
                if isinstance(event, ConnectionClosed | Close):
                    return
                await self._handle(event)
            self._flush()
            if not data:
                return

    async def _handle(self, event: Any) -> None:
        documents = self.documents
        if self._closing and isinstance(event, CatalogueReceived | StateVectorReceived):
            # Our Close is on its way (a duplicate session, say): what the peer sent
            # before reading it needs no answer, and none may follow a Close. Its
            # updates are still applied; the next session catches up the rest.
            return
        if isinstance(event, HandshakeComplete):
            self.peer_key = event.peer_device_key
            self.epoch = event.epoch
            self.stats.peer_device_id = self.peer_device_id
            self.handshake_done.set()
            entries = tuple(await documents.catalogue())
            self._answer(Catalogue(entries))
        elif isinstance(event, CatalogueReceived):
            self._answer(DeltaRequest(tuple(await documents.wanted(event))))
        elif isinstance(event, StateVectorReceived):
            await self._room_to_answer()
            payload = await documents.answer(event)
            if self._answer(Update(event.doc_id, event.sync_class, payload)):
                self.stats.updates_out += 1
        elif isinstance(event, Update):
            if await documents.apply(self, event):
                self.stats.updates_in += 1
                self.stats.docs_received.add(event.doc_id)
        elif isinstance(event, HeartbeatAck):
            waiter = self._ack_waiters.get(event.counter)
            if waiter is not None:
                self._acked.add(event.counter)
                waiter.set()
        elif isinstance(event, CatchUpDone):
            self.stats.caught_up_at = trio.current_time()
            self.caught_up.set()

    def _answer(self, message: Catalogue | DeltaRequest | Update) -> bool:
        """Send what an event called for, unless the session began closing while
        the answer was being prepared (the service closes a duplicate session as
        soon as its handshake is done): nothing may follow our Close."""
        if self._closing:
            return False
        self._queue(self.conn.send(message))
        return True

    async def _room_to_answer(self) -> None:
        """Wait while half the send queue is full: the peer paces its own catch-up.

        The reader stops reading meanwhile, which is the backpressure: the peer
        sends no more requests than it reads answers. A peer that stops reading
        altogether is cut by the writer's deadline (``WRITE_TIMEOUT_S``)."""
        while self.pending() >= self._answer_high_water and not self._overflow:
            self._paced = True
            try:
                await self._wrote.wait()
            finally:
                self._paced = False

    # ------------------------------------------------------------------ writing

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self._queue(data)

    def _queue(self, data: bytes) -> None:
        if not data or self._overflow:
            return
        try:
            self._send.send_nowait(data)
        except trio.WouldBlock:
            # The peer reads too slowly: drop the session now rather than buffer
            # without bound; a new session catches up through the catalogue.
            self._overflow = True
            log.warning("session with %s fell behind; closing to resync",
                        self.peer_device_id or self.stats.address)
            self._send.close()
            if self._scope is not None:
                self._scope.cancel()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the session has ended (or is ending): nothing more goes out

    async def _writer(self, scope: trio.CancelScope) -> None:
        try:
            async with self._receive:
                async for first in self._receive:
                    chunks = [first]
                    while len(chunks) < 1024:
                        try:
                            chunks.append(self._receive.receive_nowait())
                        except (trio.WouldBlock, trio.EndOfChannel):
                            break
                    data = b"".join(chunks)
                    with trio.fail_after(WRITE_TIMEOUT_S):
                        await self.stream.send_all(data)
                    self.stats.bytes_out += len(data)
                    self.stats.frames_out += len(chunks)
                    self._last_wrote_at = trio.current_time()
                    self._wrote.set()
                    self._wrote = trio.Event()
        finally:
            self._writer_done.set()
        if self._overflow:
            raise SessionError("peer too slow: send queue full")
        if isinstance(self.stream, trio.abc.HalfCloseableStream):
            with trio.move_on_after(1):
                try:
                    await self.stream.send_eof()
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass

    async def _keeper(self, scope: trio.CancelScope) -> None:
        with trio.move_on_after(HANDSHAKE_TIMEOUT_S) as handshake:
            await self.handshake_done.wait()
        if handshake.cancelled_caught:
            self._ended_by = "handshake timed out"
            scope.cancel()
            return
        while True:
            await trio.sleep(HEARTBEAT_INTERVAL_S)
            heard = self.stats.last_received_at
            if self._paced:  # not reading on purpose: the peer taking our writes is alive
                heard = max(heard, self._last_wrote_at)
            silent = trio.current_time() - heard
            if silent > self.idle_timeout_s:
                self._ended_by = f"peer silent for {silent:.0f} s"
                self.close_soon("idle")
                scope.cancel()
                return
            try:
                self._queue(self.conn.send(Heartbeat(next(self._heartbeats))))
            except LocalProtocolError:
                self._ended_by = "heartbeats unanswered"
                self.close_soon("no heartbeat answers")
                scope.cancel()
                return

    async def _close_after(self, exc: ProtocolError) -> None:
        """Queue a Close saying why, behind what is sealed already; give the writer a moment."""
        if self._closing or self._overflow:
            return
        try:
            data = self.conn.send(Close(int(exc.close_code or CloseCode.PROTOCOL_ERROR),
                                        str(exc)[:200]))
        except ProtocolError:
            return
        self._closing = True
        self._queue(data)
        self._send.close()
        with trio.move_on_after(CLOSE_GRACE_S):
            await self._writer_done.wait()


__all__ = ["INITIATOR", "SessionError", "SessionOutcome", "SessionStatistics", "SyncSession"]
