"""The storage thread: the only write connection of a process to its store file.

Theory of operation: the trio side submits jobs on a thread-safe queue (it
never blocks the event loop; pycrdt observers that produce them are
synchronous). The thread takes a job, drains whatever else is queued — group
commit — and runs the batch in one ``BEGIN IMMEDIATE … COMMIT``; only then does
it report the batch's last ticket back through the trio token. A failed batch is
rolled back whole and every later batch is refused: the trio side may hold
changes that never reached the disk. ``Call`` jobs run a function alone on the
connection (loads, refresh queries, compaction). See
docs/decisions/0001-sqlite-on-a-storage-thread.md for why a thread.

Client ids: each process leases one of the device's persisted pycrdt client ids,
guarded by a lock file, so ids are reused across restarts (state vectors stay
small) and never shared by two live processes. A process that died without
closing leaves its id retired for good: its unsaved updates may have reached a
peer, so that id's next clocks are not ours to reuse.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import queue
import random
import sqlite3
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from . import crypto_at_rest, schema
from .crypto_at_rest import BlobCipher
from .errors import (
    CorruptStoreError,
    StoreError,
    StoreLockedError,
    StoreOpenError,
    StoreWriteError,
    is_busy,
)
from .storage_calls import _open_blob, compact_document, read_snapshot
from .sync_class import SyncClass
from .values import format_timestamp, utc_now

log = logging.getLogger("mirror.store")

MAX_BATCH_JOBS = 4096
MAX_BATCH_BYTES = 32 * 1024 * 1024
BUSY_TIMEOUT_MS = 10_000
ENVELOPE_DIGEST_PERSON = b"mirror/envelope"
"""BLAKE2b personalisation of the digest that deduplicates stored envelopes."""
MAX_CLIENT_ID = 2**32 - 1  # Yjs stays below 2**32; stay interoperable (notes/pycrdt.md, 12)

FaultHook = Callable[[str], None]
CommitCallback = Callable[[int, "BaseException | None"], None]


@dataclass(frozen=True)
class DocInfo:
    """What the catalogue knows about a document without loading it."""

    doc_id: str
    kind: str
    sync_class: SyncClass


@dataclass(frozen=True)
class ExternalChanges:
    """What other processes committed to the file since this store last looked."""

    documents: list[DocInfo]
    snapshots: list[tuple[str, bytes]]
    updates: list[tuple[str, bytes]]
    max_seq: int


@dataclass
class Append:
    """Write job: append one update of a document to its log."""

    ticket: int
    doc_id: str
    data: bytes


@dataclass
class Create:
    """Write job: record a new document in the catalogue."""

    ticket: int
    info: DocInfo
    created_at: str


@dataclass
class SetClass:
    """Write job: change a document's sync class."""

    ticket: int
    doc_id: str
    sync_class: SyncClass


@dataclass
class Envelopes:
    """Keep the signed envelopes a document's updates arrived in (duplicates ignored)."""

    ticket: int
    doc_id: str
    envelopes: tuple[bytes, ...]


@dataclass
class Delete:
    """Remove a document with its snapshot, updates and envelopes."""

    ticket: int
    doc_id: str


WriteJob = Append | Create | SetClass | Envelopes | Delete


@dataclass
class WriteBatch:
    """Write jobs that must commit in one transaction (never split across batches)."""

    jobs: list[WriteJob]

    @property
    def ticket(self) -> int:
        return self.jobs[-1].ticket


@dataclass
class Call:
    """Run ``fn(conn)`` alone on the storage thread and hand the result back."""

    fn: Callable[[sqlite3.Connection], Any]
    done: Callable[[Any, BaseException | None], None]


class Stop:
    """Job that ends the storage thread once the jobs before it are done."""


Job = WriteJob | WriteBatch | Call | Stop


class StorageThread:
    """Owns the connection; started by :meth:`start`, ended by :meth:`stop`."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        fault: FaultHook | None,
        compact_after_updates: int,
        on_committed: CommitCallback,
        cipher: BlobCipher | None = None,
        passphrase: str | None = None,
    ) -> None:
        self.path = path
        # Encryption at rest: blobs are sealed here, on this thread, just before
        # INSERT and opened just after SELECT (crdt/crypto_at_rest.py).
        self.cipher = cipher
        self._passphrase = passphrase
        self._synchronous = synchronous
        self._fault = fault
        self._compact_after = compact_after_updates
        self._on_committed = on_committed
        self._token = trio.lowlevel.current_trio_token()
        self._queue: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock_fd: int | None = None
        self._data_version = -1
        self.client_id = 0
        self.failure: BaseException | None = None
        self.auto_compactions = 0
        self.initial_documents: list[DocInfo] = []
        self.initial_seq = 0
        self.between_reads: Callable[[str], None] | None = None
        """Test hook: called on this thread inside :meth:`read_external`'s read
        transaction, after the new rows were read (another writer commits there)."""

    def qsize(self) -> int:
        return self._queue.qsize()

    def submit(self, job: WriteJob | WriteBatch) -> None:
        self._queue.put(job)

    async def call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(connection)`` on the storage thread, after what is queued."""
        done = trio.Event()
        box: list[tuple[Any, BaseException | None]] = []

        def finish(result: Any, error: BaseException | None) -> None:
            box.append((result, error))
            done.set()

        def deliver(result: Any, error: BaseException | None) -> None:
            self._token.run_sync_soon(finish, result, error)

        self._queue.put(Call(fn, deliver))
        await done.wait()
        result, error = box[0]
        if error is not None:
            raise error
        return result

    async def stop(self) -> None:
        self._queue.put(Stop())
        if self._thread is not None:
            await trio.to_thread.run_sync(self._thread.join)

    def _notify(self, ticket: int, error: BaseException | None) -> None:
        self._token.run_sync_soon(self._on_committed, ticket, error)

    async def start(self) -> None:
        """Start the storage thread; return once it has opened the file and leased an id."""
        ready = trio.Event()
        failed: list[BaseException] = []

        def started() -> None:
            self._token.run_sync_soon(ready.set)

        def main() -> None:
            try:
                self._main(started)
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

    def _main(self, started: Callable[[], None]) -> None:
        conn = self._connect()
        try:
            self._unlock(conn)  # before the first write: a wrong key changes nothing
            self._acquire_client_id(conn)
            self._data_version = int(conn.execute("PRAGMA data_version").fetchone()[0])
            with read_snapshot(conn):  # the catalogue and the cursor from one snapshot
                self.initial_documents = [
                    DocInfo(d, k, SyncClass(c))
                    for d, k, c in conn.execute("SELECT doc_id, kind, sync_class FROM documents")
                ]
                self.initial_seq = int(
                    conn.execute(
                        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM updates), 0),"
                        " COALESCE((SELECT MAX(snapshot_seq) FROM documents), 0))"
                    ).fetchone()[0]
                )
            started()
            self._serve(conn)
        finally:
            try:
                if self.failure is None and self.client_id:
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
        # A store from before files were created private: its -wal and -shm would
        # be created with its mode, so the store is made private first.
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            schema.make_private(path)
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
            if is_busy(exc):
                raise StoreLockedError(f"{self.path}: locked by another program") from None
            raise CorruptStoreError(f"{self.path}: cannot open ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise CorruptStoreError(f"{self.path}: cannot open ({exc})") from None

    def _unlock(self, conn: sqlite3.Connection) -> None:
        header = crypto_at_rest.read_header(conn, str(self.path))
        passphrase, self._passphrase = self._passphrase, None
        if header is None:
            if self.cipher is not None:
                raise crypto_at_rest.EncryptionError(f"{self.path}: this store is not encrypted")
            return
        if self.cipher is not None:
            crypto_at_rest.check(header, self.cipher)
        elif passphrase is not None:
            self.cipher = crypto_at_rest.unlock(header, passphrase)
        else:
            raise crypto_at_rest.PassphraseRequiredError(
                f"{self.path}: this home is encrypted; a passphrase is needed"
            )

    def _acquire_client_id(self, conn: sqlite3.Connection) -> None:
        lock_dir = Path(f"{self.path}.locks")
        lock_dir.mkdir(mode=schema.PRIVATE_DIR_MODE, exist_ok=True)
        schema.make_private(lock_dir)
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
        pending: Job | None = None
        while True:
            job = pending if pending is not None else self._queue.get()
            pending = None
            if isinstance(job, Stop):
                return
            if isinstance(job, Call):
                try:
                    result = job.fn(conn)
                except BaseException as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    job.done(None, _translate(exc))
                else:
                    job.done(result, None)
                continue
            batch: list[WriteJob] = job.jobs[:] if isinstance(job, WriteBatch) else [job]
            size = sum(_job_size(j) for j in batch)
            while len(batch) < MAX_BATCH_JOBS and size < MAX_BATCH_BYTES:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(nxt, Call | Stop):
                    pending = nxt
                    break
                more = nxt.jobs if isinstance(nxt, WriteBatch) else [nxt]
                batch.extend(more)
                size += sum(_job_size(j) for j in more)
            self._write_batch(conn, batch)

    def _write_batch(self, conn: sqlite3.Connection, batch: list[WriteJob]) -> None:
        last = batch[-1].ticket
        if self.failure is not None:
            self._notify(last, self.failure)
            return
        touched: set[str] = set()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job in batch:
                if self._fault is not None:
                    self._fault(type(job).__name__.lstrip("_").lower())
                if isinstance(job, Append):
                    data = job.data
                    if self.cipher is not None:
                        data = self.cipher.seal("update", job.doc_id, data)
                    conn.execute(
                        "INSERT INTO updates(doc_id, writer, data) VALUES (?, ?, ?)",
                        (job.doc_id, self.client_id, data),
                    )
                    touched.add(job.doc_id)
                elif isinstance(job, Create):
                    conn.execute(
                        "INSERT OR IGNORE INTO documents(doc_id, kind, sync_class, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        (job.info.doc_id, job.info.kind, job.info.sync_class.value, job.created_at),
                    )
                elif isinstance(job, Envelopes):
                    self._insert_envelopes(conn, job)
                elif isinstance(job, Delete):
                    conn.execute("DELETE FROM documents WHERE doc_id=?", (job.doc_id,))
                    touched.discard(job.doc_id)
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
            self.failure = error
            self._notify(last, error)
            return
        self._notify(last, None)
        if self._compact_after > 0:
            for doc_id in touched:
                self._maybe_compact(conn, doc_id)

    def _insert_envelopes(self, conn: sqlite3.Connection, job: Envelopes) -> None:
        for raw in job.envelopes:
            digest = hashlib.blake2b(raw, digest_size=16, person=ENVELOPE_DIGEST_PERSON).digest()
            data = raw if self.cipher is None else self.cipher.seal("envelope", job.doc_id, raw)
            conn.execute(
                "INSERT OR IGNORE INTO envelopes(doc_id, digest, data) VALUES (?, ?, ?)",
                (job.doc_id, digest, data),
            )

    def _maybe_compact(self, conn: sqlite3.Connection, doc_id: str) -> None:
        count = conn.execute("SELECT COUNT(*) FROM updates WHERE doc_id=?", (doc_id,)).fetchone()
        if int(count[0]) <= self._compact_after:
            return
        try:
            compact_document(conn, doc_id=doc_id, live=None, cipher=self.cipher)
            self.auto_compactions += 1
        except StoreError as exc:  # the log stays as it was; try again next time
            log.warning("automatic compaction of %s skipped: %s", doc_id, exc)

    def read_external(
        self, conn: sqlite3.Connection, last: int
    ) -> ExternalChanges | None:
        """Runs on the storage thread: what other processes wrote after seq *last*.

        Everything is read in one read transaction, so the rows, the snapshots
        and the new cursor come from one snapshot of the file: a row another
        process commits meanwhile is either read now or has a seq above the
        cursor, never skipped. (Read as separate statements, a row committed
        between reading the rows and reading ``MAX(seq)`` was passed over for
        good.) ``data_version`` is taken before the transaction, so a commit
        after it is looked for again next time."""
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        if version == self._data_version:
            return None
        self._data_version = version
        with read_snapshot(conn):
            docs = [
                DocInfo(d, k, SyncClass(c))
                for d, k, c in conn.execute("SELECT doc_id, kind, sync_class FROM documents")
            ]
            snapshots = [
                (d, _open_blob(self.cipher, "snapshot", d, s))
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
            if self.between_reads is not None:
                self.between_reads("rows-read")
            max_seq = int(conn.execute("SELECT COALESCE(MAX(seq), 0) FROM updates").fetchone()[0])
            snap_max = conn.execute(
                "SELECT COALESCE(MAX(snapshot_seq), 0) FROM documents"
            ).fetchone()
        max_seq = max(max_seq, int(snap_max[0]), last)
        updates = [(d, _open_blob(self.cipher, "update", d, b)) for _, d, b in rows]
        return ExternalChanges(docs, snapshots, updates, max_seq)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, schema.PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _job_size(job: WriteJob) -> int:
    if isinstance(job, Append):
        return len(job.data)
    if isinstance(job, Envelopes):
        return sum(len(e) for e in job.envelopes)
    return 64


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
