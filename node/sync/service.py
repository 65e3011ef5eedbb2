"""The sync service: listener, dialer with backoff, sessions, and what ties them
to the store and to discovery. ``mirror serve`` runs it headless; the REPL runs
it in the background when ``sync_enabled`` is on.

Theory of operation
-------------------
* The listener accepts TCP connections; the first bytes say whether a peer
  opens a session or a pairing (``protocol.pairing.classify_opening``). Pairing
  is only served while :meth:`SyncService.allow_pairing` holds a code.
* Peers to dial come from discovery (a tag only this person's devices
  recognise) and from ``--peer`` addresses. Each device has one dialer that
  reconnects with exponential backoff (capped, jittered) while it is wanted. A
  device discovered at several addresses is dialled at each in turn
  (``dialing.connect_first``); the one that answered is tried first next time.
* Two devices that dial each other at once get two sessions; both sides keep
  the one initiated by the device with the smaller key, so they agree without
  talking. A session with ourselves (our own advertisement) is dropped.
* A refresh loop picks up what other processes wrote to the home (a one-shot
  ``mirror reflect``): their changes to loaded documents reach the sessions
  through the store's listeners; new shareable documents are loaded and sent
  whole; a change of sync class restarts the sessions so catalogues are rebuilt.
* The service writes ``sync-status.json`` in the home (peers, last sync,
  pending) for ``mirror sync status`` and ``mirror devices`` in other processes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from crdt import DocInfo, SourceKind, StoredDoc, SyncClass, UpdateSource
from protocol import INITIATOR, RESPONDER, PeerIsThisDevice, RemoteProtocolError, Update
from protocol.pairing import classify_opening

from ..core import MirrorCore
from ..files import write_private_json
from ..processes import process_alive
from ..refresh import RefreshPublisher
from .backoff import Backoff
from .catalogue import offerable
from .dialing import connect_first
from .documents import ArrivalHook, SessionPeer
from .group import Group
from .limits import (
    CONNECT_TIMEOUT_S,
    DIAL_BACKOFF_MAX_S,
    DIAL_BACKOFF_MIN_S,
    MAX_DIAL_ADDRESSES,
    OPENING_TIMEOUT_S,
    REFRESH_INTERVAL_S,
    STATUS_INTERVAL_S,
)
from .session import SessionError, SessionOutcome, SyncSession

log = logging.getLogger("mirror.sync")

STATUS_FILE = "sync-status.json"

PairingHandler = Callable[[trio.SocketStream, bytes], Awaitable[None]]


@dataclass
class PeerStatus:
    """What the sync service knows of one peer device."""

    device_id: str
    name: str = ""
    address: str = ""
    connected: bool = False
    connected_at: float | None = None
    last_seen: float | None = None  # wall clock (time.time) of the last byte
    last_sync: float | None = None
    updates_in: int = 0
    updates_out: int = 0


@dataclass
class SyncStatistics:
    """The sync service's counters (written to the status file)."""

    listening: str = ""
    sessions: int = 0
    sessions_total: int = 0
    sessions_failed: int = 0
    updates_in: int = 0
    updates_out: int = 0
    peers: dict[str, PeerStatus] = field(default_factory=dict)


class SyncService:
    """A node's sync: listens, dials peers with backoff, runs one session per peer, and
    picks up documents other processes created."""

    def __init__(
        self,
        core: MirrorCore,
        group: Group,
        *,
        listen: tuple[str, int],
        peers: Iterable[tuple[str, int]] = (),
        classes: Iterable[SyncClass] = (SyncClass.DEVICES,),
        on_arrival: ArrivalHook | None = None,
        wall_clock: Callable[[], float] | None = None,
        refresher: RefreshPublisher | None = None,
    ) -> None:
        self.core = core
        self.store = core.store
        self.group = group
        self.listen = listen
        self.classes = tuple(classes)
        self._static_peers = list(peers)
        self._on_arrival = on_arrival
        self._wall = wall_clock or time.time
        # What other processes write comes through the process's one refresh loop
        # (node.refresh; the REPL's watch hears the same refreshes), or a loop of its own.
        self.refresher = refresher or RefreshPublisher(core.store)
        self.sessions: dict[str, SyncSession] = {}  # by peer device id
        self.stats = SyncStatistics()
        self._dialing: set[tuple[str, int]] = set()
        self._self_addresses: set[tuple[str, int]] = set()
        self._pairing: PairingHandler | None = None
        self._nursery: trio.Nursery | None = None
        self.port = 0
        self._status_dirty = True
        self._known_classes: dict[str, SyncClass] = {}
        # What any refresh of this process found (not only this service's own
        # refreshes: the result of one goes to its caller alone).
        self._found_documents: list[DocInfo] = []
        self._group_changed = False
        self.changed = trio.Event()  # set whenever a session starts, ends or catches up
        self.peer_epochs: dict[str, int] = {}
        """The newest group epoch at which each peer (by device id) completed a
        handshake with this device since the service started: it holds that
        epoch's secret, so rooms of older epochs are no longer needed for it."""

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, dial, refresh; ``nursery.start`` returns the listening port."""
        await self._preload()
        host, port = self.listen
        listeners = await trio.open_tcp_listeners(port, host=host or None)
        self.port = listeners[0].socket.getsockname()[1]
        self.stats.listening = f"{host}:{self.port}"
        self._self_addresses.add((host, self.port))
        self.store.add_catalogue_listener(self._found_documents.extend)
        self.store.add_listener(self._note_group_change)
        try:
            await self._serve(listeners, task_status)
        finally:
            self.store.remove_catalogue_listener(self._found_documents.extend)
            self.store.remove_listener(self._note_group_change)

    async def _serve(
        self, listeners: list[trio.SocketListener], task_status: trio.TaskStatus[int]
    ) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(trio.serve_listeners, self._accept, listeners)
            nursery.start_soon(self._refresh_loop)
            nursery.start_soon(self._status_loop)
            for address in self._static_peers:
                self.dial(address)
            task_status.started(self.port)

    def dial(self, *addresses: tuple[str, int], epoch: int | None = None) -> None:
        """Keep a session with the device at *addresses* (one device's, best
        first; at most MAX_DIAL_ADDRESSES) from now on, reconnecting with backoff.
        Addresses another dialer already covers are left to it.

        *epoch*: meet the peer at this earlier epoch (it missed a removal)."""
        wanted = [
            a for a in dict.fromkeys(addresses)
            if a not in self._dialing and a not in self._self_addresses
        ][:MAX_DIAL_ADDRESSES]
        if not wanted or self._nursery is None:
            return
        try:
            self._nursery.start_soon(self._dial_forever, wanted, epoch)
        except RuntimeError:  # the service is shutting down
            return
        self._dialing.update(wanted)

    def allow_pairing(self, handler: PairingHandler | None) -> None:
        """Serve pairing openings on the listener with *handler* (None: refuse them)."""
        self._pairing = handler

    async def _preload(self) -> None:
        # Loaded documents receive other processes' changes (and so the sessions
        # hear of them); documents nobody loaded would change silently.
        for info in offerable(self.store, self.classes):
            await self.store.open_doc(info.doc_id, kind=info.kind, create=False)
        self._known_classes = {i.doc_id: i.sync_class for i in self.store.documents()}

    # ------------------------------------------------------------------ connections

    async def _accept(self, stream: trio.SocketStream) -> None:
        """Serve one incoming connection. Whatever goes wrong with it ends it alone:
        the listener, the other sessions and the service go on."""
        try:
            await self._accept_one(stream)
        except Exception:
            log.exception("connection from %s failed", _peer_name(stream))
            with trio.move_on_after(1):
                await stream.aclose()

    async def _accept_one(self, stream: trio.SocketStream) -> None:
        address = _peer_name(stream)
        try:
            with trio.fail_after(OPENING_TIMEOUT_S):
                opening = b""
                kind = None
                while kind is None:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        await stream.aclose()
                        return
                    opening += chunk
                    kind = classify_opening(opening)
        except (trio.TooSlowError, RemoteProtocolError, trio.BrokenResourceError, OSError) as exc:
            log.info("dropped a connection from %s: %s", address, exc)
            with trio.move_on_after(1):
                await stream.aclose()
            return
        if kind == "pairing":
            if self._pairing is None:
                log.info("pairing attempt from %s while not pairing: refused", address)
                await stream.aclose()
                return
            await self._pairing(stream, opening)
            return
        await self._run_session(_Prefixed(stream, opening), RESPONDER, address)

    async def _dial_forever(
        self, addresses: list[tuple[str, int]], epoch: int | None = None
    ) -> None:
        backoff = Backoff(DIAL_BACKOFF_MIN_S, DIAL_BACKOFF_MAX_S)
        order = list(addresses)
        try:
            while True:
                started = trio.current_time()
                try:
                    with trio.fail_after(CONNECT_TIMEOUT_S):
                        stream, index = await connect_first(order)
                except (OSError, trio.TooSlowError) as exc:
                    log.debug("cannot reach %s: %s", _names(order), exc)
                else:
                    address = order.pop(index)
                    order.insert(0, address)  # it answered: try it first next time
                    name = f"{address[0]}:{address[1]}"
                    result = await self._run_session(stream, INITIATOR, name, epoch)
                    if (result is SessionOutcome.ENDED and epoch is not None
                            and epoch < self.group.keyring.epoch):
                        epoch = None  # it has caught up with the new epoch by now
                    if result is SessionOutcome.SELF:
                        self._self_addresses.add(address)
                        return
                    if result is SessionOutcome.DUPLICATE:
                        backoff.set_delay(DIAL_BACKOFF_MAX_S / 4)
                    if trio.current_time() - started > 30:
                        backoff.reset()
                await backoff.wait()
        finally:
            self._dialing.difference_update(addresses)

    async def run_session(
        self, stream: trio.abc.Stream, role: Any, address: str, *, epoch: int | None = None
    ) -> SessionOutcome:
        """Run one session over *stream* (e.g. through a relay, whose *address*
        starts with ``relay:``), at *epoch* (default: the newest; an initiator
        presents it, a responder accepts it and older ones)."""
        return await self._run_session(stream, role, address, epoch)

    async def _run_session(
        self, stream: trio.abc.Stream, role: Any, address: str, epoch: int | None = None
    ) -> SessionOutcome:
        session = SyncSession(
            self.store,
            self.group,
            stream,
            role,
            address=address,
            classes=self.classes,
            on_update=self._arrived,
            epoch=epoch if epoch is not None and epoch in self.group.keyring.epochs else None,
        )
        self.stats.sessions_total += 1
        outcome = SessionOutcome.ENDED
        try:
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._supervise, session)
                    try:
                        await session.run()
                    except SessionError as exc:
                        self.stats.sessions_failed += 1
                        log.info("session with %s ended: %s",
                                 session.peer_device_id or address, exc)
                        if isinstance(exc.protocol_error, PeerIsThisDevice):
                            outcome = SessionOutcome.SELF
                    finally:
                        nursery.cancel_scope.cancel()
            except Exception:  # a bug in one session never ends the service
                self.stats.sessions_failed += 1
                log.exception("session with %s failed", session.peer_device_id or address)
            peer = session.peer_device_id
            if peer and peer == self.group.keyring.device_id:
                outcome = SessionOutcome.SELF
            elif (peer and self.sessions.get(peer) is not session
                  and session.handshake_done.is_set()):
                outcome = SessionOutcome.DUPLICATE
        finally:
            # Also when the caller cancels us (a relay link that is no longer wanted):
            # an ended session must not stay listed.
            self._forget(session)
        return outcome

    def _forget(self, session: SyncSession) -> None:
        peer = session.peer_device_id
        if peer and self.sessions.get(peer) is session:
            del self.sessions[peer]
            status = self.stats.peers.get(peer)
            if status is not None:
                status.connected = False
        self.stats.sessions = len(self.sessions)
        self._touch()

    async def _supervise(self, session: SyncSession) -> None:
        """Register a session once authenticated; resolve duplicates; track catch-up."""
        await session.handshake_done.wait()
        peer = session.peer_device_id
        if peer == self.group.keyring.device_id:
            session.close_soon("this is myself")
            return
        if session.epoch is not None and session.epoch > self.peer_epochs.get(peer, -1):
            self.peer_epochs[peer] = session.epoch  # even for a duplicate: it proves the epoch
            self._touch()
        existing = self.sessions.get(peer)
        if existing is not None and existing is not session:
            if _keep_existing(existing, session, self.group.keyring.device_public):
                session.close_soon("duplicate session")
                return
            existing.close_soon("duplicate session")
        self.sessions[peer] = session
        self.stats.sessions = len(self.sessions)
        status = self.stats.peers.setdefault(peer, PeerStatus(peer))
        status.connected = True
        status.address = session.stats.address
        status.connected_at = self._wall()
        status.name = self._name_of(peer)
        self._touch()
        await session.caught_up.wait()
        status.last_sync = self._wall()
        self._touch()
        while True:  # keep last_seen and counters fresh while the session lives
            await trio.sleep(STATUS_INTERVAL_S)
            status.last_seen = self._wall() - (trio.current_time() - session.stats.last_received_at)
            if session.stats.updates_in != status.updates_in:
                status.last_sync = status.last_seen
            status.updates_in = session.stats.updates_in
            status.updates_out = session.stats.updates_out

    def _arrived(self, session: SessionPeer, stored: StoredDoc) -> None:
        self.stats.updates_in += 1
        self._touch()
        if self._on_arrival is not None:
            self._on_arrival(session, stored)

    def _name_of(self, device_id: str) -> str:
        for record in self.group.active():
            if record.device_id == device_id:
                return record.name
        return ""

    # ------------------------------------------------------------------ other processes

    def _note_group_change(
        self, stored: StoredDoc, update: bytes, source: UpdateSource
    ) -> None:
        # Inside pycrdt's commit: note only. (Peers' changes refresh the group in
        # DeviceDocuments.apply; this is another process's, e.g. a removal.)
        if source.kind is SourceKind.EXTERNAL and stored.doc_id == self.group.stored.doc_id:
            self._group_changed = True

    async def _refresh_loop(self) -> None:
        refresher = self.refresher
        with refresher.subscribe() as refreshes:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(refresher.run, REFRESH_INTERVAL_S)
                while True:
                    await refreshes.wait()
                    await self._after_refresh()

    async def _after_refresh(self) -> None:
        found, self._found_documents[:] = list(self._found_documents), []
        await self._pick_up(found)
        if self._group_changed:
            self._group_changed = False
            self.group.refresh()

    async def _pick_up(self, new_documents: Iterable[DocInfo]) -> None:
        restart = False
        for info in self.store.documents():
            before = self._known_classes.get(info.doc_id)
            if before is not None and before != info.sync_class:
                restart = True
            self._known_classes[info.doc_id] = info.sync_class
        for info in new_documents:
            if info.sync_class not in self.classes:
                continue
            if info.doc_id not in {i.doc_id for i in offerable(self.store, self.classes)}:
                continue
            stored = await self.store.open_doc(info.doc_id, kind=info.kind, create=False)
            whole = stored.doc.get_update()
            for session in list(self.sessions.values()):
                session.push(Update(info.doc_id, info.sync_class.value, whole))
        if restart:
            log.info("a document changed sync class: restarting sessions")
            for session in list(self.sessions.values()):
                session.close_soon("catalogue changed")

    # ------------------------------------------------------------------ status

    def _touch(self) -> None:
        self._status_dirty = True
        self.changed.set()
        self.changed = trio.Event()

    async def _status_loop(self) -> None:
        path = self.core.home.path / STATUS_FILE
        while True:
            if self._status_dirty:
                self._status_dirty = False
                await trio.to_thread.run_sync(write_status, path, self.status())
            await trio.sleep(STATUS_INTERVAL_S)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "device_id": self.group.keyring.device_id,
            "listening": self.stats.listening,
            "updated_at": self._wall(),
            "sessions": self.stats.sessions,
            "updates_in": self.stats.updates_in,
            "pending": sum(s.pending() for s in self.sessions.values()),
            "peers": [vars(p) for p in self.stats.peers.values()],
        }


def write_status(path: Path, status: dict[str, Any]) -> None:
    write_private_json(path, status, durable=False)  # rewritten every second; no fsync


def read_status(home_path: Path) -> dict[str, Any] | None:
    """The status a running ``mirror serve`` last wrote, or None if none is running."""
    path = home_path / STATUS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    pid = data.get("pid")
    running = isinstance(pid, int) and process_alive(pid)
    data["running"] = running
    return data


def via_relay(session: SyncSession) -> bool:
    return session.stats.address.startswith("relay:")


def _keep_existing(existing: SyncSession, new: SyncSession, my_key: bytes) -> bool:
    """Of two sessions with one peer, keep a direct one over one through a relay,
    then one at a newer epoch (a session in an older epoch's relay room is only
    there until the peer has caught up; both ends see the same epochs)."""
    if via_relay(existing) != via_relay(new):
        return via_relay(new)
    if existing.epoch != new.epoch:
        return (existing.epoch or 0) > (new.epoch or 0)
    return _keep_first(existing, new, my_key)


def _keep_first(existing: SyncSession, new: SyncSession, my_key: bytes) -> bool:
    """Both ends agree: keep the session initiated by the device with the smaller key."""
    def initiator_key(session: SyncSession) -> bytes:
        return my_key if session.role is INITIATOR else (session.peer_key or b"")

    a, b = initiator_key(existing), initiator_key(new)
    if a == b:
        return False  # same initiator: the newer one replaces a stale one
    return a < b


def _names(addresses: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{host}:{port}" for host, port in addresses)


def _peer_name(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


class _Prefixed(trio.abc.HalfCloseableStream):
    """A stream whose first bytes were already read (to classify the opening)."""

    def __init__(self, stream: trio.SocketStream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()

