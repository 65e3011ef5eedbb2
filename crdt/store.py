"""DocStore: pycrdt documents persisted to one SQLite file.

Theory of operation
-------------------
* Documents live on the trio thread. Each loaded document is observed; every
  committed pycrdt transaction becomes an *append job* carrying the update
  bytes. Jobs go, in order, to **one storage thread** that owns the only
  write connection of this process.
* The storage thread takes a job, drains whatever else is already queued
  (group commit), runs them all in one ``BEGIN IMMEDIATE … COMMIT`` and only
  then reports the highest committed *ticket* back to trio. ``wait_durable``
  returns once every job enqueued before the call is committed. Nothing is
  acknowledged before COMMIT; a failed batch is rolled back whole and the
  store refuses further writes (the in-memory documents may hold changes that
  are not on disk, and pretending otherwise would lose them silently).
* Loading a document reads its snapshot and later updates on the storage
  thread and applies them on the trio thread under :data:`LOAD_ORIGIN`, which
  the observer skips. Updates written by another process on the same home are
  picked up by :meth:`DocStore.refresh` (cheap when ``PRAGMA data_version`` is
  unchanged) and applied under :data:`EXTERNAL_ORIGIN`, also not re-appended.
* Compaction (on demand, or by the storage thread once a document has more than
  ``compact_after_updates`` updates) rebuilds the document from the database
  inside one write transaction, re-encodes it, reloads the encoding, checks
  that the reloaded state equals the rebuilt one (and the live one when the
  caller passes it and it has the same state vector), and only then swaps the
  snapshot in and deletes the folded updates.
* Each process holds its own pycrdt client id, persisted in ``client_ids`` and
  guarded by a lock file, so ids are reused across restarts (state vectors stay
  small) but never shared by two live processes. A process that died without
  closing leaves its id retired for good.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import logging
import os
import queue
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from pycrdt import Doc, Subscription, TransactionEvent

from . import schema
from .errors import (
    CompactionError,
    CorruptStoreError,
    DocumentError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StoreOpenError,
    StoreWriteError,
)
from .sync_class import SyncClass
from .values import format_timestamp, utc_now

log = logging.getLogger("mirror.store")

LOAD_ORIGIN = "mirror.store:load"
EXTERNAL_ORIGIN = "mirror.store:external"
_SKIP_ORIGINS = frozenset({hash(LOAD_ORIGIN), hash(EXTERNAL_ORIGIN)})

MAX_BATCH_JOBS = 4096
MAX_BATCH_BYTES = 32 * 1024 * 1024
DEFAULT_COMPACT_AFTER_UPDATES = 1000
BUSY_TIMEOUT_MS = 10_000
MAX_CLIENT_ID = 2**32 - 1  # Yjs stays below 2**32; stay interoperable (notes/pycrdt.md, 12)

FaultHook = Callable[[str], None]
UpdateListener = Callable[["StoredDoc", bytes, str], None]


@dataclass(frozen=True)
class DocInfo:
    """What the catalogue knows about a document without loading it."""

    doc_id: str
    kind: str
    sync_class: SyncClass


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
class CompactionResult:
    doc_id: str
    updates_folded: int
    bytes_before: int
    bytes_after: int


@dataclass(frozen=True)
class RefreshResult:
    """What :meth:`DocStore.refresh` found that another process wrote."""

    changed: tuple[str, ...]
    new_documents: tuple[DocInfo, ...]


@dataclass(frozen=True)
class StoreStatistics:
    client_id: int
    documents: int
    loaded: int
    queued_jobs: int
    enqueued_tickets: int
    committed_tickets: int
    batches: int
    auto_compactions: int


# --------------------------------------------------------------------------- jobs


@dataclass
class _Append:
    ticket: int
    doc_id: str
    data: bytes


@dataclass
class _Create:
    ticket: int
    info: DocInfo
    created_at: str


@dataclass
class _SetClass:
    ticket: int
    doc_id: str
    sync_class: SyncClass


_WriteJob = _Append | _Create | _SetClass


@dataclass
class _Call:
    """Run ``fn(conn)`` alone on the storage thread and hand the result back."""

    fn: Callable[[sqlite3.Connection], Any]
    done: Callable[[Any, BaseException | None], None]


class _Stop:
    pass


_Job = _WriteJob | _Call | _Stop


# --------------------------------------------------------------------------- store


class DocStore:
    """Documents of one home, persisted to one SQLite file. Open with :func:`open_store`."""

    def __init__(
        self,
        path: Path,
        *,
        compact_after_updates: int,
        fault: FaultHook | None,
        synchronous: str,
    ) -> None:
        self.path = path
        self._compact_after = compact_after_updates
        self._fault = fault
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._token = trio.lowlevel.current_trio_token()
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
        self._data_version = -1
        self._batches = 0
        self._auto_compactions = 0
        self.client_id = 0
        self._lock_fd: int | None = None
        self._thread: threading.Thread | None = None

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
        document; *source* is ``"local"``, ``"external"`` (another process) or the
        origin string of the transaction.

        Listeners run inside pycrdt's commit: they must not read or write the
        document (pycrdt raises "Already borrowed"); note what changed and act
        later. Their exceptions are logged, never raised into the transaction."""
        self._listeners.append(listener)

    def remove_listener(self, listener: UpdateListener) -> None:
        with suppress(ValueError):
            self._listeners.remove(listener)

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
        if not doc_id or len(doc_id) > 200 or not doc_id.isprintable():
            raise DocumentError(f"invalid document id {doc_id!r}")
        while doc_id in self._loading:
            await self._loading[doc_id].wait()
        if doc_id not in self._catalogue:
            await self.refresh()  # another process may have created it meanwhile
        existing = self._loaded.get(doc_id)
        info = self._catalogue.get(doc_id)
        if info is not None and info.kind != kind:
            raise DocumentError(f"document {doc_id} is a {info.kind!r}, not a {kind!r}")
        if existing is not None:
            return existing
        if info is None:
            if not create:
                raise DocumentError(f"no document {doc_id!r}")
            info = DocInfo(doc_id, kind, sync_class)
            self._catalogue[doc_id] = info
            self._enqueue(_Create(next(self._tickets), info, format_timestamp(utc_now())))
            stored = StoredDoc(doc_id, kind, info.sync_class, Doc(client_id=self.client_id))
            self._attach(stored)
            return stored
        event = self._loading[doc_id] = trio.Event()
        try:
            snapshot, updates, _ = await self._call(lambda c: _read_doc(c, doc_id))
            doc: Doc[Any] = Doc(client_id=self.client_id)
            _apply_all(doc, doc_id, snapshot, updates, origin=LOAD_ORIGIN)
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
        self._enqueue(_SetClass(next(self._tickets), doc_id, sync_class))
        await self.wait_durable()

    def _attach(self, stored: StoredDoc) -> None:
        doc_id = stored.doc_id

        def on_change(event: TransactionEvent) -> None:
            # a hash of the origin object (notes/pycrdt.md, trap 4); untyped in pycrdt
            origin = event.transaction.origin()  # type: ignore[attr-defined]
            if origin in _SKIP_ORIGINS:
                source = "external" if origin == hash(EXTERNAL_ORIGIN) else "load"
            else:
                source = "local" if origin is None else str(origin)
                self._enqueue_append(doc_id, event.update)
            if source != "load":
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
        self._enqueue(_Append(next(self._tickets), doc_id, data))

    def _enqueue(self, job: _WriteJob) -> None:
        self._enqueued = job.ticket
        self._queue.put(job)

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

    # ------------------------------------------------------------------ calls

    async def _call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        if self._closed:
            raise StoreClosedError("the store is closed")
        done = trio.Event()
        box: list[Any] = []

        def finish(result: Any, error: BaseException | None) -> None:
            box.append((result, error))
            done.set()

        def deliver(result: Any, error: BaseException | None) -> None:
            self._token.run_sync_soon(finish, result, error)

        self._queue.put(_Call(fn, deliver))
        await done.wait()
        result, error = box[0]
        if error is not None:
            raise error
        return result

    # ------------------------------------------------------------------ refresh

    async def refresh(self) -> RefreshResult:
        """Apply what other processes wrote to this store since the last look."""
        self._check_open()
        last = self._last_seen_seq
        found = await self._call(lambda c: self._read_external(c, last))
        if found is None:
            return RefreshResult((), ())
        docs, snapshots, updates, max_seq = found
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
                _apply_all(stored.doc, doc_id, snapshot, [], origin=EXTERNAL_ORIGIN)
                changed.append(doc_id)
        for doc_id, data in updates:
            stored = self._loaded.get(doc_id)
            if stored is not None:
                _apply_all(stored.doc, doc_id, None, [data], origin=EXTERNAL_ORIGIN)
                if doc_id not in changed:
                    changed.append(doc_id)
        self._last_seen_seq = max(self._last_seen_seq, max_seq)
        return RefreshResult(tuple(changed), tuple(new_docs))

    def _read_external(
        self, conn: sqlite3.Connection, last: int
    ) -> tuple[list[DocInfo], list[tuple[str, bytes]], list[tuple[str, bytes]], int] | None:
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._data_version:
            return None
        self._data_version = version
        docs = [
            DocInfo(d, k, SyncClass(c))
            for d, k, c in conn.execute("SELECT doc_id, kind, sync_class FROM documents")
        ]
        snapshots = [
            (d, bytes(s))
            for d, s in conn.execute(
                "SELECT doc_id, snapshot FROM documents WHERE snapshot_seq > ? "
                "AND snapshot IS NOT NULL",
                (last,),
            )
        ]
        rows = conn.execute(
            "SELECT seq, doc_id, data FROM updates WHERE seq > ? AND writer != ? ORDER BY seq",
            (last, self.client_id),
        ).fetchall()
        max_seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM updates").fetchone()[0])
        snap_max = conn.execute("SELECT COALESCE(MAX(snapshot_seq), 0) FROM documents").fetchone()
        max_seq = max(max_seq, int(snap_max[0]), last)
        return docs, snapshots, [(d, bytes(b)) for _, d, b in rows], max_seq

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
            live = (stored.doc.get_state(), stored.doc.get_update()) if stored else None
            result = await self._call(functools.partial(_compact, doc_id=doc_id, live=live))
            if result is not None:
                results.append(result)
        return results

    # ------------------------------------------------------------------ stats

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(
            client_id=self.client_id,
            documents=len(self._catalogue),
            loaded=len(self._loaded),
            queued_jobs=self._queue.qsize(),
            enqueued_tickets=self._enqueued,
            committed_tickets=self._committed,
            batches=self._batches,
            auto_compactions=self._auto_compactions,
        )

    # ------------------------------------------------------------------ storage thread

    def _thread_main(self, started: Callable[[], None]) -> None:
        conn = self._connect()
        try:
            self._acquire_client_id(conn)
            self._catalogue = {
                d: DocInfo(d, k, SyncClass(c))
                for d, k, c in conn.execute("SELECT doc_id, kind, sync_class FROM documents")
            }
            self._last_seen_seq = int(
                conn.execute(
                    "SELECT MAX(COALESCE((SELECT MAX(seq) FROM updates), 0),"
                    " COALESCE((SELECT MAX(snapshot_seq) FROM documents), 0))"
                ).fetchone()[0]
            )
            self._data_version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            started()
            self._serve(conn)
        finally:
            try:
                if self._failure is None and self.client_id:
                    with suppress(sqlite3.Error):
                        conn.execute(
                            "UPDATE client_ids SET state='free', since=? WHERE client_id=?",
                            (format_timestamp(utc_now()), self.client_id),
                        )
            finally:
                conn.close()
                if self._lock_fd is not None:
                    os.close(self._lock_fd)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=True, timeout=BUSY_TIMEOUT_MS
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreOpenError(f"{self.path}: cannot switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version < schema.SCHEMA_VERSION:
                schema.migrate(conn, version)
            return conn
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreLockedError(f"{self.path}: locked by another program") from None
            raise CorruptStoreError(f"{self.path}: cannot open ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise CorruptStoreError(f"{self.path}: cannot open ({exc})") from None

    def _acquire_client_id(self, conn: sqlite3.Connection) -> None:
        lock_dir = Path(f"{self.path}.locks")
        lock_dir.mkdir(exist_ok=True)
        now = format_timestamp(utc_now())
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("SELECT client_id, state FROM client_ids").fetchall()
            chosen: int | None = None
            for client_id, state in rows:
                if state == "retired":
                    continue
                fd = _try_lock(lock_dir / f"client-{client_id}.lock")
                if fd is None:
                    continue  # a live process holds it
                if state == "in_use":
                    # Its holder died without closing: unsaved updates may have reached
                    # a peer, so this id's future clocks are not ours to reuse.
                    conn.execute(
                        "UPDATE client_ids SET state='retired', since=? WHERE client_id=?",
                        (now, client_id),
                    )
                    os.close(fd)
                    continue
                if chosen is None:
                    chosen, self._lock_fd = client_id, fd
                else:
                    os.close(fd)
            if chosen is None:
                taken = {r[0] for r in rows}
                rng = random.SystemRandom()
                chosen = rng.randint(1, MAX_CLIENT_ID)
                while chosen in taken:
                    chosen = rng.randint(1, MAX_CLIENT_ID)
                fd = _try_lock(lock_dir / f"client-{chosen}.lock")
                if fd is None:
                    raise StoreOpenError("cannot lock a fresh client id")
                self._lock_fd = fd
                conn.execute(
                    "INSERT INTO client_ids(client_id, state, since) VALUES (?, 'in_use', ?)",
                    (chosen, now),
                )
            else:
                conn.execute(
                    "UPDATE client_ids SET state='in_use', since=? WHERE client_id=?",
                    (now, chosen),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.client_id = chosen

    def _serve(self, conn: sqlite3.Connection) -> None:
        pending: _Job | None = None
        while True:
            job = pending if pending is not None else self._queue.get()
            pending = None
            if isinstance(job, _Stop):
                return
            if isinstance(job, _Call):
                try:
                    result = job.fn(conn)
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    job.done(None, _translate(exc))
                else:
                    job.done(result, None)
                continue
            batch: list[_WriteJob] = [job]
            size = _job_size(job)
            while len(batch) < MAX_BATCH_JOBS and size < MAX_BATCH_BYTES:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(nxt, _Call | _Stop):
                    pending = nxt
                    break
                batch.append(nxt)
                size += _job_size(nxt)
            self._write_batch(conn, batch)

    def _write_batch(self, conn: sqlite3.Connection, batch: list[_WriteJob]) -> None:
        last = batch[-1].ticket
        if self._failure is not None:
            self._token.run_sync_soon(self._on_committed, last, self._failure)
            return
        touched: set[str] = set()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                if self._fault is not None:
                    self._fault(type(job).__name__.lstrip("_").lower())
                if isinstance(job, _Append):
                    conn.execute(
                        "INSERT INTO updates(doc_id, writer, data) VALUES (?, ?, ?)",
                        (job.doc_id, self.client_id, job.data),
                    )
                    touched.add(job.doc_id)
                elif isinstance(job, _Create):
                    conn.execute(
                        "INSERT OR IGNORE INTO documents(doc_id, kind, sync_class, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        (job.info.doc_id, job.info.kind, job.info.sync_class.value, job.created_at),
                    )
                else:
                    conn.execute(
                        "UPDATE documents SET sync_class=? WHERE doc_id=?",
                        (job.sync_class.value, job.doc_id),
                    )
            if self._fault is not None:
                self._fault("commit")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            error = StoreWriteError(f"write failed and was rolled back: {_one_line(exc)}")
            log.error("storage batch of %d jobs failed: %r", len(batch), exc)
            self._failure = error
            self._token.run_sync_soon(self._on_committed, last, error)
            return
        self._token.run_sync_soon(self._on_committed, last, None)
        if self._compact_after > 0:
            for doc_id in touched:
                self._maybe_compact(conn, doc_id)

    def _maybe_compact(self, conn: sqlite3.Connection, doc_id: str) -> None:
        count = conn.execute("SELECT COUNT(*) FROM updates WHERE doc_id=?", (doc_id,)).fetchone()
        if int(count[0]) <= self._compact_after:
            return
        try:
            _compact(conn, doc_id=doc_id, live=None)
            self._auto_compactions += 1
        except StoreError as exc:  # the log stays as it was; try again next time
            log.warning("automatic compaction of %s skipped: %s", doc_id, exc)

    async def _start(self) -> None:
        """Start the storage thread; return once it has opened the file and leased an id."""
        ready = trio.Event()
        failed: list[BaseException] = []

        def started() -> None:
            self._token.run_sync_soon(ready.set)

        def main() -> None:
            try:
                self._thread_main(started)
            except BaseException as exc:
                failed.append(exc)
                self._token.run_sync_soon(ready.set)

        # A plain thread rather than trio.to_thread: the store outlives any one
        # task, and no nursery wraps the caller's exceptions in a group.
        self._thread = threading.Thread(target=main, name=f"mirror-store:{self.path.name}",
                                        daemon=True)
        self._thread.start()
        await ready.wait()
        if failed:
            await trio.to_thread.run_sync(self._thread.join)
            raise _translate(failed[0])

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
            self._queue.put(_Stop())
            if self._thread is not None:
                await trio.to_thread.run_sync(self._thread.join)


@asynccontextmanager
async def open_store(
    path: Path | str,
    *,
    create: bool = True,
    compact_after_updates: int = DEFAULT_COMPACT_AFTER_UPDATES,
    synchronous: str = "FULL",
    fault: FaultHook | None = None,
) -> AsyncIterator[DocStore]:
    """Open the store at *path* (creating it if allowed) for the duration of the block.

    Pending writes are committed when the block exits normally. *fault* is a
    test hook called on the storage thread before each write statement.
    """
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
    store = DocStore(
        path,
        compact_after_updates=compact_after_updates,
        fault=fault,
        synchronous=synchronous.upper(),
    )
    await store._start()
    try:
        yield store
    finally:
        with trio.CancelScope(shield=True):
            await store._close()


# --------------------------------------------------------------------------- helpers (thread side)


def _read_doc(conn: sqlite3.Connection, doc_id: str) -> tuple[bytes | None, list[bytes], int]:
    row = conn.execute(
        "SELECT snapshot, snapshot_seq FROM documents WHERE doc_id=?", (doc_id,)
    ).fetchone()
    if row is None:
        raise DocumentError(f"no document {doc_id!r}")
    snapshot = bytes(row[0]) if row[0] is not None else None
    updates = conn.execute(
        "SELECT seq, data FROM updates WHERE doc_id=? ORDER BY seq", (doc_id,)
    ).fetchall()
    max_seq = max([int(row[1])] + [int(s) for s, _ in updates])
    return snapshot, [bytes(d) for _, d in updates], max_seq


def _apply_all(
    doc: Doc[Any], doc_id: str, snapshot: bytes | None, updates: list[bytes], *, origin: str
) -> None:
    try:
        with doc.transaction(origin=origin):
            if snapshot is not None:
                doc.apply_update(snapshot)
            for data in updates:
                doc.apply_update(data)
    except ValueError as exc:
        raise CorruptStoreError(
            f"document {doc_id}: stored update cannot be decoded ({exc})"
        ) from None
    except BaseException as exc:
        if type(exc).__name__ == "PanicException":  # pyo3's, not an Exception (trap 1)
            raise CorruptStoreError(
                f"document {doc_id}: stored update crashed the decoder"
            ) from None
        raise


def _compact(
    conn: sqlite3.Connection, *, doc_id: str, live: tuple[bytes, bytes] | None
) -> CompactionResult | None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        snapshot, updates, max_seq = _read_doc(conn, doc_id)
        if not updates:
            conn.execute("ROLLBACK")
            return None
        bytes_before = (len(snapshot) if snapshot else 0) + sum(len(u) for u in updates)
        rebuilt: Doc[Any] = Doc()
        _apply_all(rebuilt, doc_id, snapshot, updates, origin=LOAD_ORIGIN)
        encoded = rebuilt.get_update()
        reloaded: Doc[Any] = Doc()
        _apply_all(reloaded, doc_id, encoded, [], origin=LOAD_ORIGIN)
        if reloaded.get_state() != rebuilt.get_state() or reloaded.get_update() != encoded:
            raise CompactionError(f"document {doc_id}: re-encoded state differs; log kept")
        if live is not None and live[0] == rebuilt.get_state() and live[1] != encoded:
            raise CompactionError(f"document {doc_id}: stored state differs from live; log kept")
        conn.execute(
            "UPDATE documents SET snapshot=?, snapshot_seq=?, compacted_at=? WHERE doc_id=?",
            (encoded, max_seq, format_timestamp(utc_now()), doc_id),
        )
        conn.execute("DELETE FROM updates WHERE doc_id=? AND seq <= ?", (doc_id, max_seq))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return CompactionResult(doc_id, len(updates), bytes_before, len(encoded))


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _job_size(job: _Job) -> int:
    return len(job.data) if isinstance(job, _Append) else 64


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _translate(exc: BaseException) -> BaseException:
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sqlite3.DatabaseError):
        return CorruptStoreError(f"database error: {_one_line(exc)}")
    if isinstance(exc, sqlite3.Error):
        return StoreError(f"database error: {_one_line(exc)}")
    return exc


