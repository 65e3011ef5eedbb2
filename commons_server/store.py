"""The Commons server's database: signed envelopes, what they say, and the moderation log.

Theory of operation
-------------------
One SQLite file in the server's home (WAL, ``synchronous=FULL``,
``secure_delete=ON``). The authority is the ``envelopes`` table: every signed
update as it arrived, so the server can hand any reader the owner's own
signatures. ``documents`` holds what the envelopes say, validated, for the web
view and the catalogue. Writes are *jobs* run by one writer task on a worker
thread; every job queued while the previous batch committed goes into the next
transaction (group commit) and each caller is woken only after COMMIT. Reads
use a second connection (WAL readers never block the writer).

Deleting (a withdrawal or an operator's removal) removes the envelopes and the
row in one transaction, then VACUUMs and truncates the WAL, so the bytes are no
longer anywhere in the database files; ``secure_delete`` zeroes freed pages in
between. A tombstone keeps the id (never the content) so it is not accepted again.

The DocStore of the nodes keeps unsigned updates and has no deletion, which is
why the server keeps its own tables (spec/commons.md, "Storage").
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import trio

log = logging.getLogger("mirror.commons.store")

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS documents (
    doc_id       TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    author       TEXT NOT NULL,
    thread       TEXT NOT NULL DEFAULT '',
    title        TEXT NOT NULL DEFAULT '',
    body         TEXT NOT NULL DEFAULT '',
    reaction     TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL DEFAULT '',
    received_seq INTEGER NOT NULL,
    hidden       INTEGER NOT NULL DEFAULT 0,
    state_vector BLOB NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS documents_threads ON documents(kind, hidden, received_seq);
CREATE INDEX IF NOT EXISTS documents_by_thread ON documents(thread, received_seq);
CREATE TABLE IF NOT EXISTS envelopes (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL,
    digest BLOB NOT NULL,
    data   BLOB NOT NULL,
    UNIQUE (doc_id, digest)
) STRICT;
CREATE TABLE IF NOT EXISTS withdrawn (
    doc_id TEXT PRIMARY KEY,
    at     TEXT NOT NULL,
    by     TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS blocked (author TEXT PRIMARY KEY, at TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS modlog (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    reason    TEXT NOT NULL,
    operator  TEXT NOT NULL,
    signature TEXT NOT NULL UNIQUE
) STRICT;
"""


class StoreError(Exception):
    """The Commons database failed (message is one line)."""


@dataclass
class _Batch:
    jobs: list[tuple[Job, trio.Event, list[Any]]] = field(default_factory=list)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class CommonsStore:
    """Open with :func:`open_commons_store`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = trio.Lock()
        self._pending: list[tuple[Job, trio.Event, list[Any]]] = []
        self._wake = trio.Event()
        self._closed = False
        self.batches = 0

    async def write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run *job* inside the next write transaction; returns after COMMIT."""
        if self._closed:
            raise StoreError("the Commons database is closed")
        done = trio.Event()
        box: list[Any] = []
        self._pending.append((job, done, box))
        self._wake.set()
        await done.wait()
        if box and isinstance(box[0], BaseException):
            raise StoreError(f"database write failed: {box[0]}") from box[0]
        result: T = box[1]
        return result

    async def read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only *job* on the reader connection."""
        if self._closed or self._reader is None:
            raise StoreError("the Commons database is closed")
        reader = self._reader
        async with self._read_lock:
            try:
                return await trio.to_thread.run_sync(job, reader)
            except sqlite3.Error as exc:
                raise StoreError(f"database read failed: {exc}") from exc

    async def maintenance(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Run *job* outside any transaction (VACUUM, checkpoints), after pending writes."""
        marker: list[T] = []

        def outside(conn: sqlite3.Connection) -> None:
            marker.append(job(conn))

        await self._run_exclusive(outside)
        return marker[0]

    async def _run_exclusive(self, job: Job) -> None:
        done = trio.Event()
        box: list[Any] = ["exclusive"]
        self._pending.append((job, done, box))
        self._wake.set()
        await done.wait()
        if len(box) > 1 and isinstance(box[1], BaseException):
            raise StoreError(f"database maintenance failed: {box[1]}") from box[1]

    async def _run_writer(self, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while True:
            if not self._pending:
                if self._closed:
                    return
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            batch, self._pending = self._pending, []
            # Exclusive jobs (VACUUM) run alone; ordinary ones share one transaction.
            group: list[tuple[Job, trio.Event, list[Any]]] = []
            for item in batch:
                if item[2][:1] == ["exclusive"]:
                    if group:
                        await trio.to_thread.run_sync(self._commit_group, group)
                        group = []
                    async with self._read_lock:  # no reader may hold a snapshot meanwhile
                        await trio.to_thread.run_sync(self._exclusive, item)
                else:
                    group.append(item)
            if group:
                await trio.to_thread.run_sync(self._commit_group, group)
            for _, done, _box in batch:
                done.set()

    def _commit_group(self, group: list[tuple[Job, trio.Event, list[Any]]]) -> None:
        conn = self._writer
        assert conn is not None
        results: list[Any] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, _, _box in group:
                conn.execute("SAVEPOINT job")
                try:
                    results.append((None, job(conn)))
                    conn.execute("RELEASE job")
                except Exception as exc:  # one bad job must not sink the batch
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((exc, None))
            conn.execute("COMMIT")
            self.batches += 1
        except sqlite3.Error as exc:
            log.exception("commit failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _, _, box in group:
                box[:] = [exc]
            return
        for (_, _, box), (error, value) in zip(group, results, strict=True):
            box[:] = [error, value] if error is None else [error]

    def _exclusive(self, item: tuple[Job, trio.Event, list[Any]]) -> None:
        job, _, box = item
        assert self._writer is not None
        try:
            job(self._writer)
        except sqlite3.Error as exc:
            box.append(exc)

    async def _open(self) -> None:
        def opening() -> tuple[sqlite3.Connection, sqlite3.Connection]:
            writer = _connect(self.path)
            writer.executescript(SCHEMA)
            return writer, _connect(self.path)

        try:
            self._writer, self._reader = await trio.to_thread.run_sync(opening)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open the Commons database ({exc})") from exc

    async def _close(self) -> None:
        self._closed = True
        self._wake.set()
        for conn in (self._reader, self._writer):
            if conn is not None:
                await trio.to_thread.run_sync(conn.close)


@asynccontextmanager
async def open_commons_store(path: Path | str) -> AsyncIterator[CommonsStore]:
    store = CommonsStore(Path(path))
    await store._open()
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store._run_writer)
            try:
                yield store
            finally:
                store._closed = True
                store._wake.set()
    finally:
        with trio.CancelScope(shield=True):
            await store._close()


def checkpoint_and_vacuum(conn: sqlite3.Connection) -> None:
    """Make deleted rows unrecoverable from the files: VACUUM, then empty the WAL."""
    conn.execute("VACUUM")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
