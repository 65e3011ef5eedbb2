"""DocStore: pycrdt documents persisted to one SQLite file (or a PostgreSQL database).

Theory of operation
-------------------
* Documents live on the trio thread. Each loaded document is observed; every
  committed pycrdt transaction becomes an append job for the storage thread
  (``crdt/storage.py``), which commits in groups and reports back. Nothing is
  acknowledged before COMMIT: ``wait_durable`` returns once every change made
  before the call is on disk. After a failed write the store refuses further
  writes (the in-memory documents may hold changes that are not on disk).
* Loading a document reads its snapshot and later updates on the storage
  thread and applies them here under :data:`LOAD_ORIGIN`, which the observer
  skips. Updates another process wrote to the same file are picked up by
  :meth:`DocStore.refresh` (cheap when ``PRAGMA data_version`` is unchanged)
  and applied under :data:`EXTERNAL_ORIGIN`, also not appended again.
* Compaction (on demand, or by the storage thread once a document has more than
  ``compact_after_updates`` updates) rebuilds the document from the database
  inside one write transaction, re-encodes it, reloads the encoding, checks
  that the reloaded state equals the rebuilt one — and the live one when it has
  the same state vector — and only then swaps the snapshot in and deletes the
  folded updates.
* The engine is behind a seam (crdt/storage_backend.py): a device's store is an
  SQLite file (crdt/storage_sqlite.py); a platform server may give
  :func:`open_store` a ``postgresql://`` URL instead (crdt/storage_pg.py, psycopg
  imported only then). The guarantees above hold on both.
"""

from __future__ import annotations

import enum
import functools
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from pycrdt import Doc, Subscription, TransactionEvent

from . import schema
from .crypto_at_rest import BlobCipher
from .errors import (
    CompactionError,
    DocumentError,
    StoreClosedError,
    StoreOpenError,
    StoreWriteError,
)
from .storage import (
    Append,
    Create,
    Delete,
    DocInfo,
    Envelopes,
    ExternalChanges,
    FaultHook,
    SetClass,
    StorageThread,
    WriteBatch,
    WriteJob,
)
from .storage_backend import StorageBackend
from .storage_calls import (
    EXTERNAL_ORIGIN,
    LOAD_ORIGIN,
    CompactionResult,
    apply_all,
    compact_document,
    documents_with_updates,
    first_envelope_seqs,
    read_doc,
    read_doc_if_changed,
    read_envelopes,
)
from .storage_sqlite import SqliteBackend
from .sync_class import SyncClass
from .update_check import covers
from .values import format_timestamp, is_valid_doc_id, utc_now

__all__ = [
    "EXTERNAL_ORIGIN",
    "LOAD_ORIGIN",
    "CompactionResult",
    "DocInfo",
    "DocStore",
    "RefreshResult",
    "ScrubResult",
    "SourceKind",
    "StoreStatistics",
    "StoredDoc",
    "UpdateSource",
    "open_store",
]

log = logging.getLogger("mirror.store")

_SKIP_ORIGINS = frozenset({hash(LOAD_ORIGIN), hash(EXTERNAL_ORIGIN)})

DEFAULT_COMPACT_AFTER_UPDATES = 1000
DEFAULT_RECONNECT_TIMEOUT_S = 30.0



class SourceKind(enum.Enum):
    """Where a change a listener hears came from."""

    LOCAL = "local"
    """Written in this process, in a transaction with no origin."""
    EXTERNAL = "external"
    """Written by another process on the same file, read back by ``refresh()``."""
    ORIGIN = "origin"
    """Applied in a transaction tagged with an origin (a sync session, the blind-store
    client): :meth:`UpdateSource.of` that origin tells whose it was."""


@dataclass(frozen=True, slots=True)
class UpdateSource:
    """What a listener is told about a change's source."""

    kind: SourceKind
    origin_hash: int | None = None
    """For ``ORIGIN``: the hash of the transaction's origin (pycrdt reports only the
    hash, notes/pycrdt.md trap 4)."""

    @classmethod
    def of(cls, origin: object) -> UpdateSource:
        """The source of changes applied under *origin*: compare a listener's with it."""
        return cls(SourceKind.ORIGIN, hash(origin))


LOCAL_SOURCE = UpdateSource(SourceKind.LOCAL)
EXTERNAL_SOURCE = UpdateSource(SourceKind.EXTERNAL)

UpdateListener = Callable[["StoredDoc", bytes, UpdateSource], None]
CatalogueListener = Callable[[tuple[DocInfo, ...]], None]


@dataclass
class StoredDoc:
    """A loaded document: its pycrdt ``Doc`` plus identity and sync class."""

    doc_id: str
    kind: str
    sync_class: SyncClass
    doc: Doc[Any]
    _subscription: Subscription | None = field(default=None, repr=False)

    @property
    def info(self) -> DocInfo:
        return DocInfo(self.doc_id, self.kind, self.sync_class)


@dataclass(frozen=True)
class RefreshResult:
    """What :meth:`DocStore.refresh` found that another process wrote."""

    changed: tuple[str, ...]
    new_documents: tuple[DocInfo, ...]


@dataclass(frozen=True)
class ScrubResult:
    """What :meth:`DocStore.scrub_deleted` could not do (nothing, when complete)."""

    kept_logs: tuple[str, ...] = ()
    """Documents whose update log could not be compacted: deleted content stays in it."""
    file_busy: bool = False
    """Another connection kept the file from being rewritten or its WAL from being
    truncated: freed pages may still hold deleted content."""

    @property
    def complete(self) -> bool:
        return not self.kept_logs and not self.file_busy

    def describe(self) -> str:
        """One line for a person: what remains, and why."""
        parts = []
        if self.kept_logs:
            parts.append(f"the update log of {', '.join(self.kept_logs)} could not be compacted")
        if self.file_busy:
            parts.append("another program was reading the file, so it could not be rewritten")
        return "; ".join(parts) or "nothing remains"


@dataclass(frozen=True)
class StoreStatistics:
    """A snapshot of the store's counters (``DocStore.statistics()``)."""

    client_id: int
    documents: int
    loaded: int
    queued_jobs: int
    enqueued_tickets: int
    committed_tickets: int
    batches: int
    auto_compactions: int
    reconnects: int = 0
    """Connections to the database server re-established (PostgreSQL only)."""


# --------------------------------------------------------------------------- store


class DocStore:
    """Documents of one home, persisted to one SQLite file or one PostgreSQL database.
    Open with :func:`open_store`."""

    def __init__(
        self,
        backend: StorageBackend,
        *,
        compact_after_updates: int,
        fault: FaultHook | None,
        cipher: BlobCipher | None = None,
        passphrase: str | None = None,
    ) -> None:
        self.path: Path | None = backend.path if isinstance(backend, SqliteBackend) else None
        """The store's file (None on PostgreSQL)."""
        self.where = backend.where
        """The store's file or database, for messages (never a password)."""
        self._storage = StorageThread(
            backend,
            fault=fault,
            compact_after_updates=compact_after_updates,
            on_committed=self._on_committed,
            cipher=cipher,
            passphrase=passphrase,
        )
        self._tickets = itertools.count(1)
        self._enqueued = 0
        self._committed = 0
        self._failure: BaseException | None = None
        self._closed = False
        self._durable = trio.Event()  # replaced after each commit notification
        self._catalogue: dict[str, DocInfo] = {}
        self._loaded: dict[str, StoredDoc] = {}
        self._loading: dict[str, trio.Event] = {}
        self._listeners: list[UpdateListener] = []
        self._last_seen_seq = 0
        self._batches = 0
        self._held: list[WriteJob] | None = None
        # doc id -> its newest stored seq, and the refresh cursor, when it was
        # loaded or last reconciled (see reconcile)
        self._disk_marks: dict[str, int] = {}
        self._disk_cursors: dict[str, int] = {}
        self._catalogue_listeners: list[CatalogueListener] = []

    @property
    def cipher(self) -> BlobCipher | None:
        """The key that seals this store's blobs, if it is encrypted at rest."""
        return self._storage.cipher

    @property
    def client_id(self) -> int:
        """This process's pycrdt client id (leased, see crdt/storage.py)."""
        return self._storage.client_id

    # ------------------------------------------------------------------ catalogue

    def documents(self, kind: str | None = None) -> list[DocInfo]:
        """Every document in the store (optionally of one kind), sorted by id."""
        return sorted(
            (i for i in self._catalogue.values() if kind is None or i.kind == kind),
            key=lambda i: i.doc_id,
        )

    def info(self, doc_id: str) -> DocInfo | None:
        return self._catalogue.get(doc_id)

    def loaded(self, doc_id: str) -> StoredDoc | None:
        return self._loaded.get(doc_id)

    def add_listener(self, listener: UpdateListener) -> None:
        """Call ``listener(stored_doc, update, source)`` after every change to a loaded
        document; *source* (an :class:`UpdateSource`) says whether this process wrote
        it, another process did, or whose tagged transaction applied it.

        Listeners run inside pycrdt's commit: they must not read or write the
        document (pycrdt raises "Already borrowed"); note what changed and act
        later. Their exceptions are logged, never raised into the transaction."""
        self._listeners.append(listener)

    def remove_listener(self, listener: UpdateListener) -> None:
        with suppress(ValueError):
            self._listeners.remove(listener)

    def add_catalogue_listener(self, listener: CatalogueListener) -> None:
        """Call ``listener(new_documents)`` whenever a :meth:`refresh` — whoever
        called it — finds documents another process created. A refresh's result
        goes to its caller only; several tasks of one process refresh (a sync
        service, the REPL's watcher, an open or a compaction), and each must
        hear of every new document. Runs on the trio thread; must not block."""
        self._catalogue_listeners.append(listener)

    def remove_catalogue_listener(self, listener: CatalogueListener) -> None:
        with suppress(ValueError):
            self._catalogue_listeners.remove(listener)

    # ------------------------------------------------------------------ documents

    async def open_doc(
        self,
        doc_id: str,
        *,
        kind: str,
        sync_class: SyncClass = SyncClass.LOCAL,
        create: bool = True,
    ) -> StoredDoc:
        """Load (or create) a document. A new document gets *sync_class*; an
        existing one keeps the class it has. A kind mismatch is an error."""
        self._check_open()
        if not is_valid_doc_id(doc_id):
            raise DocumentError(f"invalid document id {doc_id[:80]!r}")
        while doc_id in self._loading:
            await self._loading[doc_id].wait()
        existing = self._loaded.get(doc_id)
        if existing is not None:
            if existing.kind != kind:
                raise DocumentError(f"document {doc_id} is a {existing.kind!r}, not a {kind!r}")
            return existing
        # One opener at a time per id: a second caller waits and gets the same
        # object, so two live Docs never diverge for one document.
        event = self._loading[doc_id] = trio.Event()
        try:
            if doc_id not in self._catalogue:
                await self.refresh()  # another process may have created it meanwhile
            info = self._catalogue.get(doc_id)
            if info is not None and info.kind != kind:
                raise DocumentError(f"document {doc_id} is a {info.kind!r}, not a {kind!r}")
            if info is None:
                if not create:
                    raise DocumentError(f"no document {doc_id!r}")
                info = DocInfo(doc_id, kind, sync_class)
                self._catalogue[doc_id] = info
                self._enqueue(Create(next(self._tickets), info, format_timestamp(utc_now())))
                stored = StoredDoc(doc_id, kind, info.sync_class, Doc(client_id=self.client_id))
                self._attach(stored)
                self._disk_cursors[doc_id] = self._last_seen_seq
                return stored
            cipher = self._storage.cipher
            cursor = self._last_seen_seq
            snapshot, updates, mark = await self._storage.call(
                lambda c: read_doc(c, doc_id, cipher)
            )
            doc: Doc[Any] = Doc(client_id=self.client_id)
            apply_all(doc, doc_id, snapshot, updates, origin=LOAD_ORIGIN)
            self._disk_marks[doc_id] = mark
            self._disk_cursors[doc_id] = cursor
            stored = StoredDoc(doc_id, info.kind, info.sync_class, doc)
            self._attach(stored)
            return stored
        finally:
            del self._loading[doc_id]
            event.set()

    async def set_sync_class(self, doc_id: str, sync_class: SyncClass) -> None:
        """Change where a document may travel; durable when this returns."""
        self._check_open()
        info = self._catalogue.get(doc_id)
        if info is None:
            raise DocumentError(f"no document {doc_id!r}")
        new = DocInfo(doc_id, info.kind, sync_class)
        self._catalogue[doc_id] = new
        if doc_id in self._loaded:
            self._loaded[doc_id].sync_class = sync_class
        self._enqueue(SetClass(next(self._tickets), doc_id, sync_class))
        await self.wait_durable()

    def _attach(self, stored: StoredDoc) -> None:
        doc_id = stored.doc_id

        def on_change(event: TransactionEvent) -> None:
            # a hash of the origin object (notes/pycrdt.md, trap 4); untyped in pycrdt
            origin = event.transaction.origin()  # type: ignore[attr-defined]
            source: UpdateSource | None  # None: loading, which no listener hears
            if origin in _SKIP_ORIGINS:
                source = EXTERNAL_SOURCE if origin == hash(EXTERNAL_ORIGIN) else None
            else:
                source = LOCAL_SOURCE if origin is None else UpdateSource(SourceKind.ORIGIN, origin)
                self._enqueue_append(doc_id, event.update)
            if source is not None:
                for listener in list(self._listeners):
                    try:
                        listener(stored, event.update, source)
                    except Exception:  # never let a listener fail the transaction
                        log.exception("update listener failed")

        stored._subscription = stored.doc.observe(on_change)
        self._loaded[doc_id] = stored

    # ------------------------------------------------------------------ writes

    def ensure_writable(self) -> None:
        """Raise before a caller changes a document that could not be saved."""
        self._check_open()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("the store is closed")
        if self._failure is not None:
            raise StoreClosedError(
                f"an earlier write failed ({self._failure}); nothing after it was saved — "
                "restart to reload from disk"
            )

    def _enqueue_append(self, doc_id: str, data: bytes) -> None:
        if self._closed or self._failure is not None:
            # Raising inside a pycrdt observer cannot undo the transaction; the
            # failure is reported by the next wait_durable / write instead.
            log.error("change to %s after the store failed or closed: not saved", doc_id)
            self._failure = self._failure or StoreClosedError("write after close")
            return
        self._enqueue(Append(next(self._tickets), doc_id, data))

    def _enqueue(self, job: WriteJob) -> None:
        if self._held is not None:  # inside apply_enveloped: one transaction for all
            self._held.append(job)
            return
        self._enqueued = job.ticket
        self._storage.submit(job)

    # ------------------------------------------------------------------ envelopes

    def apply_enveloped(
        self,
        stored: StoredDoc,
        updates: Iterable[bytes],
        envelopes: Iterable[bytes],
        *,
        origin: str,
    ) -> None:
        """Apply *updates* to *stored* and keep the signed *envelopes* they came in.

        The updates' change and the envelopes commit in one transaction (never
        one without the other); :meth:`wait_durable` waits for both. A host that
        must hand the author's signatures to readers (the Commons server) reads
        them back with :meth:`envelopes`. Raises ``ValueError`` for an update
        pycrdt cannot decode; what was applied before it is still saved, its
        envelopes are not."""
        self._check_open()
        if self._loaded.get(stored.doc_id) is not stored:
            raise DocumentError(f"document {stored.doc_id} is not loaded in this store")
        held: list[WriteJob] = []
        self._held = held
        try:
            with stored.doc.transaction(origin=origin):
                for update in updates:
                    stored.doc.apply_update(update)
        except BaseException:
            self._held = None
            self._submit_group(held)
            raise
        self._held = None
        held.append(Envelopes(next(self._tickets), stored.doc_id, tuple(envelopes)))
        self._submit_group(held)

    def _submit_group(self, jobs: list[WriteJob]) -> None:
        if jobs:
            self._enqueued = jobs[-1].ticket
            self._storage.submit(WriteBatch(jobs))

    async def envelopes(self, doc_id: str) -> list[bytes]:
        """The envelopes kept for *doc_id* (committed ones), oldest first."""
        self._check_open()
        cipher = self._storage.cipher
        result: list[bytes] = await self._storage.call(
            lambda c: read_envelopes(c, doc_id, cipher)
        )
        return result

    async def envelope_order(self) -> dict[str, int]:
        """For every document with envelopes, a number that orders them by first arrival."""
        self._check_open()
        result: dict[str, int] = await self._storage.call(first_envelope_seqs)
        return result

    # ------------------------------------------------------------------ deleting

    def unload(self, doc_id: str) -> None:
        """Forget the live ``Doc`` of *doc_id* (its saved state stays); frees memory.

        A reference kept to the old :class:`StoredDoc` is detached: changes made
        through it are not saved. :meth:`open_doc` loads it again."""
        stored = self._loaded.pop(doc_id, None)
        if stored is not None and stored._subscription is not None:
            stored.doc.unobserve(stored._subscription)
            stored._subscription = None

    async def delete_doc(self, doc_id: str, *, scrub_file: bool = False) -> bool:
        """Delete *doc_id*: its snapshot, updates and envelopes; durable on return.

        With *scrub_file* the database is then rewritten (VACUUM, WAL truncated)
        so the deleted bytes are nowhere in its files; returns False if another
        connection kept the WAL from being truncated. Other processes drop the
        document at their next :meth:`refresh`."""
        self._check_open()
        while doc_id in self._loading:
            await self._loading[doc_id].wait()
        if doc_id not in self._catalogue:
            raise DocumentError(f"no document {doc_id!r}")
        self.unload(doc_id)
        del self._catalogue[doc_id]
        self._enqueue(Delete(next(self._tickets), doc_id))
        await self.wait_durable()
        if not scrub_file:
            return True
        complete: bool = await self._storage.call(self._storage.backend.scrub)
        if not complete:
            log.warning("deleted %s; another reader kept the WAL from being truncated", doc_id)
        return complete

    async def scrub_deleted(self) -> ScrubResult:
        """Make content deleted from documents unrecoverable from this file.

        A CRDT deletion is one more update: the deleted text stays in the older
        update rows until they are folded away. This compacts every document
        that has an update log (compaction drops deleted content), then rewrites
        the file (VACUUM, WAL truncated) so no freed page still holds it.
        The result says what remains when that was not complete: a document
        that could not be compacted (its log is kept, a warning logged), or a
        WAL another connection kept from being truncated (its pages are
        overwritten by later writes; the next scrub finishes)."""
        self._check_open()
        await self.wait_durable()
        pending: list[str] = await self._storage.call(documents_with_updates)
        kept: list[str] = []
        for doc_id in pending:
            if doc_id not in self._catalogue:
                continue
            try:
                await self.compact([doc_id])
            except CompactionError as exc:  # its log stays; the others are still scrubbed
                log.warning("scrub: %s", exc)
                kept.append(doc_id)
        rewritten: bool = await self._storage.call(self._storage.backend.scrub)
        if not rewritten:
            log.warning("scrub: another reader kept the file from being rewritten")
        return ScrubResult(tuple(kept), not rewritten)

    async def wait_durable(self) -> None:
        """Return once every change made before the call is committed to disk."""
        target = self._enqueued
        while self._committed < target:
            if self._failure is not None:
                raise StoreWriteError(f"not saved: {self._failure}")
            await self._durable.wait()
        if self._failure is not None and self._committed < target:
            raise StoreWriteError(f"not saved: {self._failure}")

    def _on_committed(self, ticket: int, error: BaseException | None) -> None:
        # Runs on the trio thread (scheduled by the storage thread).
        if error is not None:
            self._failure = self._failure or error
        else:
            self._committed = max(self._committed, ticket)
            self._batches += 1
        event, self._durable = self._durable, trio.Event()
        event.set()

    # ------------------------------------------------------------------ refresh

    async def refresh(self) -> RefreshResult:
        """Apply what other processes wrote to this store since the last look."""
        self._check_open()
        last = self._last_seen_seq
        # Every id known now was created by a job queued before this read, so one
        # missing from the file was deleted by another process.
        known_before = set(self._catalogue)
        found: ExternalChanges | None = await self._storage.call(
            lambda c: self._storage.read_external(c, last)
        )
        if found is None:
            return RefreshResult((), ())
        docs, snapshots, updates, max_seq = (
            found.documents, found.snapshots, found.updates, found.max_seq
        )
        for gone in known_before - {info.doc_id for info in docs}:
            if gone in self._catalogue and gone not in self._loading:
                self.unload(gone)
                del self._catalogue[gone]
        new_docs: list[DocInfo] = []
        for info in docs:
            known = self._catalogue.get(info.doc_id)
            if known is None:
                new_docs.append(info)
            if known != info:
                self._catalogue[info.doc_id] = info
                if info.doc_id in self._loaded:
                    self._loaded[info.doc_id].sync_class = info.sync_class
        changed: list[str] = []
        for doc_id, snapshot in snapshots:
            stored = self._loaded.get(doc_id)
            if stored is not None:
                apply_all(stored.doc, doc_id, snapshot, [], origin=EXTERNAL_ORIGIN)
                changed.append(doc_id)
        for doc_id, data in updates:
            stored = self._loaded.get(doc_id)
            if stored is not None:
                apply_all(stored.doc, doc_id, None, [data], origin=EXTERNAL_ORIGIN)
                if doc_id not in changed:
                    changed.append(doc_id)
        self._last_seen_seq = max(self._last_seen_seq, max_seq)
        if new_docs:
            for catalogue_listener in list(self._catalogue_listeners):
                try:
                    catalogue_listener(tuple(new_docs))
                except Exception:
                    log.exception("catalogue listener failed")
        return RefreshResult(tuple(changed), tuple(new_docs))

    async def reconcile(self, doc_ids: Iterable[str]) -> tuple[str, ...]:
        """Apply to each loaded document of *doc_ids* whatever the file holds for it.

        :meth:`refresh` reads only what was stored after its cursor; this reads a
        document whole (snapshot and log) and applies it under
        :data:`EXTERNAL_ORIGIN`, so listeners hear of what it adds. A safety net:
        a write that reached the file but never this process is applied here (a
        sync session runs it before its catch-up, so its peer gets it too).
        A document can only lack what the file holds if refresh's cursor moved
        past a row since the document was loaded or last reconciled (rows stored
        later are above the cursor: refresh reads them): without that, nothing
        is read and nothing awaited. Otherwise a document whose newest stored seq
        is unchanged costs one small query. Returns the documents that gained
        anything."""
        self._check_open()
        candidates = [
            doc_id for doc_id in doc_ids
            if doc_id in self._loaded and self._disk_cursors.get(doc_id) != self._last_seen_seq
        ]
        if not candidates:
            return ()
        await self.wait_durable()
        cipher = self._storage.cipher
        gained = []
        for doc_id in candidates:
            stored = self._loaded.get(doc_id)
            if stored is None:
                continue  # unloaded meanwhile: loading reads the file whole anyway
            cursor = self._last_seen_seq
            found = await self._storage.call(functools.partial(
                read_doc_if_changed, doc_id=doc_id, mark=self._disk_marks.get(doc_id),
                cipher=cipher,
            ))
            if self._loaded.get(doc_id) is not stored:
                continue
            if found is None:
                self._disk_cursors[doc_id] = cursor
                continue
            snapshot, updates, mark = found
            doc = stored.doc
            before = (doc.get_state(), doc.get_update(doc.get_state()))
            apply_all(doc, doc_id, snapshot, updates, origin=EXTERNAL_ORIGIN)
            self._disk_marks[doc_id] = mark
            self._disk_cursors[doc_id] = cursor
            if not covers(*before, doc.get_state(), doc.get_update(doc.get_state())):
                gained.append(doc_id)
        if gained:
            log.warning("the file held changes to %s that this process had not applied; "
                        "applied now", ", ".join(gained))
        return tuple(gained)

    # ------------------------------------------------------------------ compaction

    async def compact(self, doc_ids: Iterable[str] | None = None) -> list[CompactionResult]:
        """Fold each document's update log into a verified snapshot."""
        self._check_open()
        await self.wait_durable()
        await self.refresh()
        ids = list(doc_ids) if doc_ids is not None else [i.doc_id for i in self.documents()]
        results = []
        for doc_id in ids:
            if doc_id not in self._catalogue:
                raise DocumentError(f"no document {doc_id!r}")
            stored = self._loaded.get(doc_id)
            # Its state vector and (an update of nothing but) its delete set.
            live = (stored.doc.get_state(), stored.doc.get_update(stored.doc.get_state())) \
                if stored else None
            result = await self._storage.call(
                functools.partial(
                    compact_document, doc_id=doc_id, live=live, cipher=self._storage.cipher
                )
            )
            if result is not None:
                results.append(result)
        return results

    # ------------------------------------------------------------------ stats

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            client_id=self.client_id,
            documents=len(self._catalogue),
            loaded=len(self._loaded),
            queued_jobs=self._storage.qsize(),
            enqueued_tickets=self._enqueued,
            committed_tickets=self._committed,
            batches=self._batches,
            auto_compactions=self._storage.auto_compactions,
            reconnects=self._storage.reconnects,
        )

    # ------------------------------------------------------------------ storage thread

    async def _start(self) -> None:
        await self._storage.start()
        self._catalogue = {i.doc_id: i for i in self._storage.initial_documents}
        self._last_seen_seq = self._storage.initial_seq

    async def _close(self) -> None:
        if self._closed:
            return
        try:
            if self._failure is None:
                await self.wait_durable()
        finally:
            self._closed = True
            for stored in self._loaded.values():
                if stored._subscription is not None:
                    stored.doc.unobserve(stored._subscription)
            await self._storage.stop()


@asynccontextmanager
async def open_store(
    path: Path | str,
    *,
    create: bool = True,
    compact_after_updates: int = DEFAULT_COMPACT_AFTER_UPDATES,
    synchronous: str = "FULL",
    fault: FaultHook | None = None,
    cipher: BlobCipher | None = None,
    passphrase: str | None = None,
    reconnect_timeout_s: float = DEFAULT_RECONNECT_TIMEOUT_S,
) -> AsyncIterator[DocStore]:
    """Open the store at *path* (creating it if allowed) for the duration of the block.

    *path* is an SQLite file, or a ``postgresql://`` (``postgres://``) URL of a
    PostgreSQL database (crdt/storage_pg.py; needs the ``postgres`` extra): an empty
    database becomes a store, one of another application is refused. Pending writes
    are committed when the block exits normally. *fault* is a test hook called on the
    storage thread before each write statement.

    *synchronous* is SQLite's (FULL, NORMAL or EXTRA); PostgreSQL's durability is the
    server's (``synchronous_commit``). *reconnect_timeout_s* is PostgreSQL's: how long
    a lost connection to the server is retried before a write fails.

    An encrypted store (crdt/crypto_at_rest.py) needs its *cipher* (already
    unlocked) or its *passphrase* (derived on the storage thread); without
    either it raises ``PassphraseRequiredError``, with a wrong one
    ``WrongPassphraseError``, before anything is written. A *passphrase* given
    for a plain store is ignored; a *cipher* is refused.
    """
    backend: StorageBackend
    if isinstance(path, str) and is_postgres_url(path):
        # reason: psycopg is loaded only where PostgreSQL is used
        from .storage_pg import PostgresBackend

        backend = PostgresBackend(path, create=create, reconnect_timeout_s=reconnect_timeout_s)
    else:
        path = Path(path)
        if synchronous.upper() not in {"FULL", "NORMAL", "EXTRA"}:
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        version = await trio.to_thread.run_sync(schema.inspect_store_file, path)
        if version is None:
            if not create:
                raise StoreOpenError(f"{path}: no Mirror store here")
            if not path.parent.is_dir():
                raise StoreOpenError(f"{path.parent}: directory does not exist")
            await trio.to_thread.run_sync(
                lambda: schema.create_store_file(path, created_at=format_timestamp(utc_now()))
            )
        backend = SqliteBackend(path, synchronous=synchronous.upper())
    store = DocStore(
        backend,
        compact_after_updates=compact_after_updates,
        fault=fault,
        cipher=cipher,
        passphrase=passphrase,
    )
    await store._start()
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store._close()


def is_postgres_url(location: str) -> bool:
    """Whether *location* names a PostgreSQL database rather than an SQLite file."""
    return location.startswith(("postgresql://", "postgres://"))
