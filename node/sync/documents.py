"""The document side of a sync session, and the one for a person's devices.

A :class:`~node.sync.session.SyncSession` owns the I/O of a session: the
Connection, the reader, writer and keeper tasks, the order of frames, the
deadlines and the bounded send queue. What the session says about documents
comes from its :class:`SessionDocuments`: which credentials it presents, what
its catalogue offers, which of the peer's documents it asks for and with what
state vector, what it answers a state vector with, what it does with an Update,
and which local changes it pushes live. Three implement it:

- :class:`DeviceDocuments` (here): a DocStore and a Group, between the devices
  of one person — the default of ``SyncSession(store, group, ...)``;
- ``node.commons.CommonsSync``: a node's Commons client (its own documents only,
  signed by their owner; every received envelope verified);
- ``commons_server.hub_documents.HubDocuments``: the Commons server's hub.

Every hook runs on the session's reader task, one event at a time, so a peer's
frames are handled in the order they were sent: a HeartbeatAck a peer returns
proves that everything before the Heartbeat was handled (applied or refused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

import trio
from pycrdt import Doc

from crdt import DocStore, DocumentError, StoredDoc, SyncClass, UpdateSource
from crdt.update_check import UpdateRejected, check_map_roots
from protocol import (
    CatalogueEntry,
    CatalogueReceived,
    CloseCode,
    Credentials,
    Event,
    RemoteProtocolError,
    StateVector,
    StateVectorReceived,
    Update,
    state_vector_digest,
)
from protocol.limits import MAX_FRAME_BYTES

from ..identity import device_id_for
from .catalogue import acceptable, kind_for, offerable
from .group import Group

log = logging.getLogger("mirror.sync")

EMPTY_STATE_VECTOR = Doc().get_state()

class SessionPeer(Protocol):
    """What the document side uses of the session it serves: who the peer is, whether
    the handshake is done, and two ways to act (push an update, end the session).
    :class:`~node.sync.session.SyncSession` is one; naming only this keeps
    ``session`` → ``documents`` the only import between the two modules."""

    origin: str  # the pycrdt transaction origin of the peer's updates
    peer_key: bytes | None
    handshake_done: trio.Event

    @property
    def peer_device_id(self) -> str: ...

    def push(self, message: Update) -> None: ...

    def end_soon(self, reason: str, code: CloseCode = CloseCode.NOT_AUTHORISED) -> None: ...


ArrivalHook = Callable[[SessionPeer, StoredDoc], None]
"""Called after a peer's update to *stored* was applied (device sessions)."""


class SessionDocuments(Protocol):
    """What a session offers, asks for, answers and accepts.

    A hook that refuses what the peer sent raises a
    :class:`~protocol.ProtocolError`; the session then sends a Close with the
    error's ``close_code`` and its message as the reason (a person may read it:
    one line), and ends.
    """

    @property
    def shareable(self) -> tuple[str, ...]:
        """The sync classes this session carries (never ``local``)."""
        ...

    @property
    def max_frame_bytes(self) -> int:
        """The largest frame the Connection accepts from the peer."""
        ...

    def credentials(self) -> Credentials:
        """What this side presents in the handshake (called once)."""
        ...

    async def catalogue(self) -> list[CatalogueEntry]:
        """The documents this side offers after the handshake."""
        ...

    async def wanted(self, offered: CatalogueReceived) -> list[StateVector]:
        """Which of the peer's differing documents to request, each with our state vector."""
        ...

    async def answer(self, request: StateVectorReceived) -> bytes:
        """The Update payload for a document the peer asked for."""
        ...

    async def apply(self, session: SessionPeer, message: Update) -> bool:
        """Take an Update from the peer; False if it was ignored (not counted)."""
        ...

    def live(self, session: SessionPeer) -> AbstractContextManager[None]:
        """While the session runs: push live changes with ``session.push(Update(...))``."""
        ...

    def observe(self, event: Event) -> None:
        """See every event the peer's bytes produced, before it is handled."""
        ...


class DeviceDocuments:
    """A person's documents of *classes* in *store*, between devices of *group*.

    Offers only what :func:`~node.sync.catalogue.offerable` lists (the choke
    point), accepts only what :func:`~node.sync.catalogue.acceptable` allows,
    applies peer updates under the session's origin (so they persist like any
    change and are never echoed back to that peer), and pushes each committed
    local change of a shared class live.

    Membership is checked for the life of the session, not only at its
    handshake: every hook asks :meth:`Group.admits` about the peer first, so
    once this device knows the peer was removed (or that it was removed itself)
    nothing more of the peer's is applied, nothing more is sent to it, and a
    group watcher ends the session at once (:meth:`SyncSession.end_soon`).
    """

    def __init__(
        self,
        store: DocStore,
        group: Group,
        *,
        classes: Iterable[SyncClass] = (SyncClass.DEVICES,),
        epoch: int | None = None,
        on_update: ArrivalHook | None = None,
    ) -> None:
        self.store = store
        self.group = group
        self.classes = tuple(SyncClass(c) for c in classes)
        self.shareable = tuple(c.value for c in self.classes)
        self.max_frame_bytes = MAX_FRAME_BYTES
        self.epoch = epoch
        self._on_update = on_update
        self._session: SessionPeer | None = None

    def credentials(self) -> Credentials:
        return self.group.credentials(self.epoch)

    def _check_peer(self, session: SessionPeer | None = None) -> None:
        """Refuse to go on with a peer that is no longer a member (or when we are not)."""
        session = session or self._session
        key = session.peer_key if session is not None else None
        if not self.group.admits(key):
            raise RemoteProtocolError(_removal_reason(self.group, key), CloseCode.NOT_AUTHORISED)

    async def catalogue(self) -> list[CatalogueEntry]:
        self._check_peer()
        offered = offerable(self.store, self.classes)
        # The safety net of catch-up: what reached the file but not this process's
        # documents (so no live push carried it) is applied first, and the
        # catalogue, and so the peer, sees it (DocStore.reconcile).
        await self.store.reconcile(info.doc_id for info in offered)
        entries = []
        for info in offered:
            stored = self.store.loaded(info.doc_id) or await self.store.open_doc(
                info.doc_id, kind=info.kind, create=False
            )
            digest = state_vector_digest(stored.doc.get_state())
            entries.append(CatalogueEntry(info.doc_id, info.sync_class.value, digest))
        return entries

    async def wanted(self, offered: CatalogueReceived) -> list[StateVector]:
        self._check_peer()
        entries = {e.doc_id: e for e in offered.entries}
        items = []
        for doc_id in offered.differing:
            entry = entries[doc_id]
            if not acceptable(doc_id, entry.sync_class, self.store, self.classes):
                continue
            stored = self.store.loaded(doc_id)
            sv = stored.doc.get_state() if stored else EMPTY_STATE_VECTOR
            items.append(StateVector(doc_id, entry.sync_class, sv))
        return items

    async def answer(self, request: StateVectorReceived) -> bytes:
        self._check_peer()
        stored = self.store.loaded(request.doc_id)
        if stored is None:
            stored = await self.store.open_doc(request.doc_id, kind=kind_for(request.doc_id))
        try:
            return stored.doc.get_update(request.state_vector)
        except ValueError:
            raise RemoteProtocolError(f"unusable state vector for {request.doc_id!r}") from None

    async def apply(self, session: SessionPeer, message: Update) -> bool:
        self._check_peer(session)
        if not acceptable(message.doc_id, message.sync_class, self.store, self.classes):
            log.info("ignored an update for %s: not shared here", message.doc_id)
            return False
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
                return False
        self.store.ensure_writable()
        try:
            check_map_roots(message.update)  # pycrdt trap 11: no non-map roots from peers
            with stored.doc.transaction(origin=session.origin):
                stored.doc.apply_update(message.update)
        except UpdateRejected as exc:
            raise RemoteProtocolError(f"refused an update for {message.doc_id!r}: {exc}") from None
        except ValueError:
            raise RemoteProtocolError(f"undecodable update for {message.doc_id!r}") from None
        except BaseException as exc:
            if type(exc).__name__ == "PanicException":  # pyo3's, not an Exception (trap 1)
                raise RemoteProtocolError(
                    f"an update for {message.doc_id!r} crashed the decoder") from None
            raise
        if stored.doc_id == self.group.stored.doc_id:
            self.group.refresh()
        if self._on_update is not None:
            self._on_update(session, stored)
        return True

    @contextmanager
    def live(self, session: SessionPeer) -> Iterator[None]:
        # The peer's own changes are recognised by their origin, not echoed back to it.
        own_source = UpdateSource.of(session.origin)
        group = self.group

        def on_change(stored: StoredDoc, update: bytes, source: UpdateSource) -> None:
            # Inside pycrdt's commit: must not touch the document.
            if source == own_source or not session.handshake_done.is_set():
                return  # the peer's own change, or catalogue sync will carry it
            if not group.admits(session.peer_key):
                return  # removed: it gets nothing more (the watcher ends the session)
            if stored.sync_class not in self.classes:
                return
            if not acceptable(stored.doc_id, stored.sync_class.value, self.store, self.classes):
                return
            session.push(Update(stored.doc_id, stored.sync_class.value, update))

        def on_membership() -> None:
            # Called by Group.refresh, wherever the removal came from; a session
            # still in its handshake is checked when it completes (catalogue()).
            if session.peer_key is not None and not group.admits(session.peer_key):
                reason = _removal_reason(group, session.peer_key)
                log.info("ending the session with %s: %s", session.peer_device_id, reason)
                session.end_soon(reason, CloseCode.NOT_AUTHORISED)

        self._session = session
        self.store.add_listener(on_change)
        unwatch = group.watch(on_membership)
        try:
            yield
        finally:
            unwatch()
            self.store.remove_listener(on_change)

    def observe(self, event: Event) -> None:
        pass


def _removal_reason(group: Group, peer_key: bytes | None) -> str:
    """Why the session ends, in words both ends read the same way (Close reason and log)."""
    if group.excluded:
        return f"device {group.keyring.device_id} was removed from the group"
    if peer_key is None:
        return "the other device has not authenticated"
    return f"device {device_id_for(peer_key)} was removed from the group"


__all__ = [
    "EMPTY_STATE_VECTOR", "ArrivalHook", "DeviceDocuments", "SessionDocuments", "SessionPeer",
]
