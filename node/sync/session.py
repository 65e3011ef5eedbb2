"""One sync session: a protocol Connection driven over a trio byte stream.

Theory of operation
-------------------
Three tasks share a session: the *reader* feeds bytes to the Connection and
acts on its events; the *writer* is the only task that writes to the stream,
taking already-sealed bytes from an ordered channel (so sealing order is wire
order) and coalescing whatever is queued into one write; the *keeper* sends
heartbeats and closes the session when the peer has been silent for
``IDLE_TIMEOUT_S`` or the handshake took longer than ``HANDSHAKE_TIMEOUT_S``.

After the handshake the session offers its catalogue (built only by
``catalogue.offerable``, the choke point), requests what differs, answers the
peer's requests with deltas, and from then on pushes each committed local
change as it happens. A change that came from this peer carries this
session's origin and is never echoed back to it; other sessions forward it.
Updates from the peer are applied under that origin, so the store persists
them like any change (durable before any acknowledgement to the person).

Anything the peer sends that the protocol refuses ends the session with a
Close; the documents keep whatever was validly applied before.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio
from pycrdt import Doc

from crdt import DocStore, DocumentError, StoredDoc, SyncClass
from crdt.update_check import UpdateRejected, check_map_roots
from protocol import (
    INITIATOR,
    NEED_DATA,
    Catalogue,
    CatalogueEntry,
    CatalogueReceived,
    CatchUpDone,
    Close,
    CloseCode,
    Connection,
    ConnectionClosed,
    DeltaRequest,
    HandshakeComplete,
    Heartbeat,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    Role,
    StateVector,
    StateVectorReceived,
    Update,
    state_vector_digest,
)
from protocol.limits import HANDSHAKE_TIMEOUT_S, HEARTBEAT_INTERVAL_S, IDLE_TIMEOUT_S

from ..identity import device_id_for
from .catalogue import acceptable, kind_for, offerable
from .group import Group

log = logging.getLogger("mirror.sync")

READ_BYTES = 256 * 1024
MAX_QUEUED_WRITES = 100_000  # sealed frames waiting for the writer; beyond: resync instead
WRITE_TIMEOUT_S = 30.0
_EMPTY_STATE_VECTOR = Doc().get_state()
_session_numbers = itertools.count(1)


class SessionError(Exception):
    """A session ended abnormally (the message says why; it is logged, not shown)."""


@dataclass
class SessionStatistics:
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


ArrivalHook = Callable[["SyncSession", StoredDoc], None]


class SyncSession:
    """Drive one session until the peer leaves, misbehaves or goes silent."""

    def __init__(
        self,
        store: DocStore,
        group: Group,
        stream: trio.abc.Stream,
        role: Role,
        *,
        address: str = "",
        classes: Iterable[SyncClass] = (SyncClass.DEVICES,),
        on_update: ArrivalHook | None = None,
        rng: Callable[[int], bytes] = os.urandom,
        epoch: int | None = None,
    ) -> None:
        self.store = store
        self.group = group
        self.stream = stream
        self.role = role
        self.classes = tuple(SyncClass(c) for c in classes)
        self.conn = Connection(
            role,
            group.credentials(epoch),
            rng,
            shareable=[c.value for c in self.classes],
        )
        # A unique origin per session: pycrdt reports hash(origin) to observers.
        self.origin = f"mirror.sync:{next(_session_numbers)}:{os.urandom(4).hex()}"
        self._origin_source = str(hash(self.origin))
        self.stats = SessionStatistics(address=address)
        self.peer_key: bytes | None = None
        self.handshake_done = trio.Event()
        self.caught_up = trio.Event()
        self._on_update = on_update
        self._send, self._receive = trio.open_memory_channel[bytes](MAX_QUEUED_WRITES)
        self._heartbeats = itertools.count(1)
        self._overflow = False
        self._closing = False
        self._ended_by: str | None = None
        self._failure: BaseException | None = None

    # ------------------------------------------------------------------ public

    @property
    def peer_device_id(self) -> str:
        return device_id_for(self.peer_key) if self.peer_key else ""

    async def run(self) -> None:
        """Run the session to its end; raises SessionError if it ended abnormally."""
        self.stats.connected_at = self.stats.last_received_at = trio.current_time()
        self.store.add_listener(self._on_local_change)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._guard, self._writer, nursery.cancel_scope)
                nursery.start_soon(self._guard, self._keeper, nursery.cancel_scope)
                self._flush()
                await self._guard(self._reader, nursery.cancel_scope)
                nursery.cancel_scope.cancel()
        finally:
            self.store.remove_listener(self._on_local_change)
            with trio.CancelScope(shield=True), trio.move_on_after(1):
                await self.stream.aclose()
        if isinstance(self._failure, ProtocolError):
            raise SessionError(f"protocol: {self._failure}") from self._failure
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
            await self._send_close(exc.close_code, exc)
            scope.cancel()
        except (SessionError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.TooSlowError, OSError) as exc:
            self._failure = self._failure or exc
            scope.cancel()

    def close_soon(self, reason: str = "") -> None:
        """Ask the session to end cleanly (Close, then end of stream)."""
        if self._closing or self.conn.our_state.value in {"handshake", "closed", "error"}:
            self._closing = True
            self._send.close()
            return
        self._closing = True
        try:
            self._queue(self.conn.send(Close(CloseCode.GOING_AWAY, reason[:200])))
        except ProtocolError:
            pass
        self._send.close()

    def push(self, message: Update) -> None:
        """Send *message* now (a whole document that appeared meanwhile)."""
        if not self.handshake_done.is_set() or self._closing:
            return
        try:
            self._queue(self.conn.send(message))
            self.stats.updates_out += 1
        except LocalProtocolError as exc:
            log.warning("update for %s not sent: %s", message.doc_id, exc)

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
                if isinstance(event, ConnectionClosed | Close):
                    return
                await self._handle(event)
            self._flush()
            if not data:
                return

    async def _handle(self, event: Any) -> None:
        if isinstance(event, HandshakeComplete):
            self.peer_key = event.peer_device_key
            self.stats.peer_device_id = self.peer_device_id
            self.handshake_done.set()
            self._queue(self.conn.send(Catalogue(tuple(await self._catalogue()))))
        elif isinstance(event, CatalogueReceived):
            items = []
            for doc_id in event.differing:
                entry = next(e for e in event.entries if e.doc_id == doc_id)
                if not acceptable(doc_id, entry.sync_class, self.store, self.classes):
                    continue
                stored = self.store.loaded(doc_id)
                sv = stored.doc.get_state() if stored else _EMPTY_STATE_VECTOR
                items.append(StateVector(doc_id, entry.sync_class, sv))
            self._queue(self.conn.send(DeltaRequest(tuple(items))))
        elif isinstance(event, StateVectorReceived):
            stored = self.store.loaded(event.doc_id)
            if stored is None:
                stored = await self.store.open_doc(event.doc_id, kind=kind_for(event.doc_id))
            try:
                delta = stored.doc.get_update(event.state_vector)
            except ValueError:
                raise RemoteProtocolError(f"unusable state vector for {event.doc_id!r}") from None
            self._queue(self.conn.send(Update(event.doc_id, event.sync_class, delta)))
            self.stats.updates_out += 1
        elif isinstance(event, Update):
            await self._apply(event)
        elif isinstance(event, CatchUpDone):
            self.stats.caught_up_at = trio.current_time()
            self.caught_up.set()

    async def _apply(self, message: Update) -> None:
        if not acceptable(message.doc_id, message.sync_class, self.store, self.classes):
            log.info("ignored an update for %s: not shared here", message.doc_id)
            return
        stored = self.store.loaded(message.doc_id)
        if stored is None:
            try:
                stored = await self.store.open_doc(
                    message.doc_id,
                    kind=kind_for(message.doc_id),
                    sync_class=SyncClass(message.sync_class),
                )
            except DocumentError as exc:
                log.warning("ignored an update for %s: %s", message.doc_id, exc)
                return
        self.store.ensure_writable()
        try:
            check_map_roots(message.update)  # pycrdt trap 11: no non-map roots from peers
            with stored.doc.transaction(origin=self.origin):
                stored.doc.apply_update(message.update)
        except UpdateRejected as exc:
            raise RemoteProtocolError(f"refused an update for {message.doc_id!r}: {exc}") from None
        except ValueError:
            raise RemoteProtocolError(f"undecodable update for {message.doc_id!r}") from None
        self.stats.updates_in += 1
        self.stats.docs_received.add(message.doc_id)
        if stored.doc_id == self.group.stored.doc_id:
            self.group.refresh()
        if self._on_update is not None:
            self._on_update(self, stored)

    async def _catalogue(self) -> list[CatalogueEntry]:
        entries = []
        for info in offerable(self.store, self.classes):
            stored = self.store.loaded(info.doc_id) or await self.store.open_doc(
                info.doc_id, kind=info.kind, create=False
            )
            digest = state_vector_digest(stored.doc.get_state())
            entries.append(CatalogueEntry(info.doc_id, info.sync_class.value, digest))
        return entries

    # ------------------------------------------------------------------ writing

    def _on_local_change(self, stored: StoredDoc, update: bytes, source: str) -> None:
        """Store listener (inside pycrdt's commit: must not touch the document)."""
        if source == self._origin_source or not self.handshake_done.is_set():
            return  # the peer's own change, or catalogue sync will carry it
        if self._closing or self.conn.our_state.value in {"closed", "error"}:
            return
        if stored.sync_class not in self.classes:
            return
        if not acceptable(stored.doc_id, stored.sync_class.value, self.store, self.classes):
            return
        try:
            self._queue(self.conn.send(Update(stored.doc_id, stored.sync_class.value, update)))
            self.stats.updates_out += 1
        except LocalProtocolError as exc:
            log.warning("live update for %s not sent: %s", stored.doc_id, exc)

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
            # The peer reads too slowly: drop the session rather than buffer without
            # bound; a new session catches up through the catalogue.
            self._overflow = True
            log.warning("session with %s fell behind; closing to resync", self.peer_device_id)
            self._send.close()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the session has ended (or is ending): nothing more goes out

    async def _writer(self, scope: trio.CancelScope) -> None:
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
            silent = trio.current_time() - self.stats.last_received_at
            if silent > IDLE_TIMEOUT_S:
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

    async def _send_close(self, code: int | None, exc: BaseException) -> None:
        try:
            data = self.conn.send(Close(int(code or CloseCode.PROTOCOL_ERROR), str(exc)[:200]))
        except ProtocolError:
            return
        with trio.move_on_after(1):
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


__all__ = ["INITIATOR", "SessionError", "SessionStatistics", "SyncSession"]
