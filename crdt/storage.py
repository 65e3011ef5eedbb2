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

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import trio

from . import crypto_at_rest
from .crypto_at_rest import BlobCipher
from .errors import StoreError, StoreWriteError
from .storage_backend import Connection, StorageBackend, begin_write
from .storage_calls import _open_blob, compact_document, read_snapshot
from .storage_sqlite import MAX_CLIENT_ID, one_line
from .sync_class import SyncClass

log = logging.getLogger("mirror.store")

MAX_BATCH_JOBS = 4096
MAX_BATCH_BYTES = 32 * 1024 * 1024
ENVELOPE_DIGEST_PERSON = b"mirror/envelope"
"""BLAKE2b personalisation of the digest that deduplicates stored envelopes."""
RECONNECT_FIRST_WAIT_S = 0.05
RECONNECT_MAX_WAIT_S = 1.0
__all__ = ["MAX_CLIENT_ID", "StorageThread"]

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
    documents: list[DocInfo]
    snapshots: list[tuple[str, bytes]]
    updates: list[tuple[str, bytes]]
    max_seq: int


@dataclass
class Append:
    ticket: int
    doc_id: str
    data: bytes


@dataclass
class Create:
    ticket: int
    info: DocInfo
    created_at: str


@dataclass
class SetClass:
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
class Group:
    """Write jobs that must commit in one transaction (never split across batches)."""

    jobs: list[WriteJob]

    @property
    def ticket(self) -> int:
        return self.jobs[-1].ticket


@dataclass
class Call:
    """Run ``fn(conn)`` alone on the storage thread and hand the result back."""

    fn: Callable[[Connection], Any]
    done: Callable[[Any, BaseException | None], None]


class Stop:
    pass


Job = WriteJob | Group | Call | Stop


class StorageThread:
    """Owns the connection; started by :meth:`start`, ended by :meth:`stop`."""

    def __init__(
        self,
        backend: StorageBackend,
        *,
        fault: FaultHook | None,
        compact_after_updates: int,
        on_committed: CommitCallback,
        cipher: BlobCipher | None = None,
        passphrase: str | None = None,
    ) -> None:
        self.backend = backend
        # Encryption at rest: blobs are sealed here, on this thread, just before
        # INSERT and opened just after SELECT (crdt/crypto_at_rest.py).
        self.cipher = cipher
        self._passphrase = passphrase
        self._fault = fault
        self._compact_after = compact_after_updates
        self._on_committed = on_committed
        self._token = trio.lowlevel.current_trio_token()
        self._queue: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: Connection | None = None
        self._pending: Job | None = None  # taken from the queue, not yet run
        self._last_ticket = 0
        self._data_version = -1
        self.client_id = 0
        self.failure: BaseException | None = None
        self.auto_compactions = 0
        self.reconnects = 0
        self.initial_documents: list[DocInfo] = []
        self.initial_seq = 0
        self.between_reads: Callable[[str], None] | None = None
        """Test hook: called on this thread inside :meth:`read_external`'s read
        transaction, after the new rows were read (another writer commits there)."""

    def qsize(self) -> int:
        return self._queue.qsize()

    def submit(self, job: WriteJob | Group) -> None:
        self._queue.put(job)

    async def call(self, fn: Callable[[Connection], Any]) -> Any:
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
        """Start the storage thread; return once it has opened the store and leased an id."""
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
        name = self.backend.where.rsplit("/", 1)[-1]
        self._thread = threading.Thread(target=main, name=f"mirror-store:{name}", daemon=True)
        self._thread.start()
        await ready.wait()
        if failed:
            await trio.to_thread.run_sync(self._thread.join)
            raise self.backend.translate(failed[0])

    def _main(self, started: Callable[[], None]) -> None:
        conn = self._conn = self.backend.connect()
        dialect = self.backend.dialect
        try:
            self._unlock(conn)  # before the first write: a wrong key changes nothing
            self.client_id = self.backend.lease_client_id(conn)
            self._data_version = int(conn.execute(dialect.data_version).fetchone()[0])
            with read_snapshot(conn):  # the catalogue and the cursor from one snapshot
                self.initial_documents = [
                    DocInfo(d, k, SyncClass(c))
                    for d, k, c in conn.execute("SELECT doc_id, kind, sync_class FROM documents")
                ]
                self.initial_seq = int(conn.execute(dialect.newest_seq).fetchone()[0])
            started()
            self._serve()
        finally:
            self.backend.release(
                self._conn if self._conn is not None else conn,
                self.client_id,
                clean=self.failure is None,
            )

    def _unlock(self, conn: Connection) -> None:
        where = self.backend.where
        header = crypto_at_rest.read_header(conn, where)
        passphrase, self._passphrase = self._passphrase, None
        if header is None:
            if self.cipher is not None:
                raise crypto_at_rest.EncryptionError(f"{where}: this store is not encrypted")
            return
        if self.cipher is not None:
            crypto_at_rest.check(header, self.cipher)
        elif passphrase is not None:
            self.cipher = crypto_at_rest.unlock(header, passphrase)
        else:
            raise crypto_at_rest.PassphraseRequiredError(
                f"{where}: this home is encrypted; a passphrase is needed"
            )

    @property
    def conn(self) -> Connection:
        assert self._conn is not None
        return self._conn

    def _serve(self) -> None:
        try:
            self._serve_jobs()
        except Exception as exc:
            # Whatever stopped the loop, nobody may wait forever: every job from now
            # on is answered with the failure, until the store stops.
            log.exception("the storage thread failed")
            error = self.failure or StoreWriteError(
                f"the storage thread stopped: {one_line(exc)}"
            )
            self.failure = error
            self._notify(self._last_ticket, error)  # the batch it was writing, if any
            self._refuse_until_stop(error)

    def _refuse_until_stop(self, error: BaseException) -> None:
        while True:
            job, self._pending = self._pending or self._queue.get(), None
            if isinstance(job, Stop):
                return
            if isinstance(job, Call):
                job.done(None, error)
            else:
                self._notify(job.ticket, error)

    def _serve_jobs(self) -> None:
        while True:
            job, self._pending = self._pending or self._queue.get(), None
            if isinstance(job, Stop):
                return
            if isinstance(job, Call):
                self._run_call(job)
                continue
            batch: list[WriteJob] = job.jobs[:] if isinstance(job, Group) else [job]
            size = sum(_job_size(j) for j in batch)
            while len(batch) < MAX_BATCH_JOBS and size < MAX_BATCH_BYTES:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(nxt, Call | Stop):
                    self._pending = nxt
                    break
                more = nxt.jobs if isinstance(nxt, Group) else [nxt]
                batch.extend(more)
                size += sum(_job_size(j) for j in more)
            self._last_ticket = batch[-1].ticket
            self._write_batch(batch)

    def _run_call(self, job: Call) -> None:
        while True:
            conn = self.conn
            try:
                result = job.fn(conn)
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if self._reconnected_after(conn, exc):
                    continue  # loads, reads, compaction and scrub may run again
                job.done(None, self.backend.translate(exc))
            else:
                job.done(result, None)
            return

    def _reconnected_after(self, conn: Connection, exc: BaseException) -> bool:
        """After *exc*: if it lost the connection, reconnect (the same client id) within
        the backend's ``reconnect_timeout_s``. True once a new connection is in place."""
        backend = self.backend
        if backend.reconnect_timeout_s <= 0 or not backend.lost_connection(conn, exc):
            return False
        log.warning("lost the connection to %s (%s); reconnecting", backend.where,
                    one_line(exc))
        backend.close_quietly(conn)
        deadline = time.monotonic() + backend.reconnect_timeout_s
        wait = RECONNECT_FIRST_WAIT_S
        while True:
            try:
                self._conn = backend.reconnect(self.client_id)
            except Exception as error:
                if time.monotonic() + wait > deadline:
                    log.error("could not reconnect to %s within %.0f s: %s", backend.where,
                              backend.reconnect_timeout_s, error)
                    return False
                time.sleep(wait)  # the storage thread, not trio: nothing else runs here
                wait = min(wait * 2, RECONNECT_MAX_WAIT_S)
                continue
            self.reconnects += 1
            log.warning("reconnected to %s; retrying", backend.where)
            return True

    def _write_batch(self, batch: list[WriteJob]) -> None:
        last = batch[-1].ticket
        if self.failure is not None:
            self._notify(last, self.failure)
            return
        while True:
            conn = self.conn
            try:
                touched, changes = self._commit_batch(conn, batch)
            except BaseException as exc:
                if conn.in_transaction:
                    with suppress(Exception):
                        conn.execute("ROLLBACK")
                if self._reconnected_after(conn, exc):
                    # Every job may run twice (its first COMMIT may have succeeded
                    # unseen): an update applied twice is a no-op, and creates,
                    # envelopes, class changes and deletes are idempotent.
                    continue
                if self.backend.lost_connection(conn, exc):
                    error = StoreWriteError(
                        f"write not confirmed: lost the connection to {self.backend.where} "
                        f"({one_line(exc)}) and could not reconnect"
                    )
                else:
                    error = StoreWriteError(f"write failed and was rolled back: {one_line(exc)}")
                log.error("storage batch of %d jobs failed: %r", len(batch), exc)
                self.failure = error
                self._notify(last, error)
                return
            break
        if changes is not None and changes == self._data_version + 1:
            self._data_version = changes  # only our own commit since we last looked
        self._notify(last, None)
        if self._compact_after > 0:
            for doc_id in touched:
                self._maybe_compact(self.conn, doc_id)

    def _commit_batch(
        self, conn: Connection, batch: list[WriteJob]
    ) -> tuple[set[str], int | None]:
        """Run *batch* in one transaction, COMMIT it; the documents whose update log
        grew, and the engine's change counter where it keeps one."""
        dialect = self.backend.dialect
        touched: set[str] = set()
        begin_write(conn)
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
                    dialect.insert_document,
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
        changes: int | None = None
        if dialect.bump_changes is not None:
            changes = int(conn.execute(dialect.bump_changes).fetchone()[0])
        if self._fault is not None:
            self._fault("commit")
        conn.execute("COMMIT")
        return touched, changes

    def _insert_envelopes(self, conn: Connection, job: Envelopes) -> None:
        for raw in job.envelopes:
            digest = hashlib.blake2b(raw, digest_size=16, person=ENVELOPE_DIGEST_PERSON).digest()
            data = raw if self.cipher is None else self.cipher.seal("envelope", job.doc_id, raw)
            conn.execute(self.backend.dialect.insert_envelope, (job.doc_id, digest, data))

    def _maybe_compact(self, conn: Connection, doc_id: str) -> None:
        try:
            count = conn.execute(
                "SELECT COUNT(*) FROM updates WHERE doc_id=?", (doc_id,)
            ).fetchone()
            if int(count[0]) <= self._compact_after:
                return
            compact_document(conn, doc_id=doc_id, live=None, cipher=self.cipher)
            self.auto_compactions += 1
        except StoreError as exc:  # the log stays as it was; try again next time
            log.warning("automatic compaction of %s skipped: %s", doc_id, exc)
        except Exception as exc:
            # The batch is committed and acknowledged; a connection lost since is
            # found again by the next job, which reconnects. The log's length is
            # checked again at the next write.
            if not self.backend.lost_connection(conn, exc):
                raise
            log.warning("automatic compaction of %s skipped: %s", doc_id, one_line(exc))

    def read_external(
        self, conn: Connection, last: int
    ) -> ExternalChanges | None:
        """Runs on the storage thread: what other processes wrote after seq *last*.

        Everything is read in one read transaction, so the rows, the snapshots
        and the new cursor come from one snapshot of the store: a row another
        process commits meanwhile is either read now or has a seq above the
        cursor, never skipped. (Read as separate statements, a row committed
        between reading the rows and reading ``MAX(seq)`` was passed over for
        good.) The data version is taken before the transaction, so a commit
        after it is looked for again next time."""
        version = int(conn.execute(self.backend.dialect.data_version).fetchone()[0])
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


def _job_size(job: WriteJob) -> int:
    if isinstance(job, Append):
        return len(job.data)
    if isinstance(job, Envelopes):
        return sum(len(e) for e in job.envelopes)
    return 64
