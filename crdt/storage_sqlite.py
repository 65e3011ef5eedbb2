"""The SQLite engine of the store: one file per node home, WAL, on the storage thread.

This is the device's engine and the one every home had before the seam
(crdt/storage_backend.py): the statements and their order are the ones the storage
thread always ran. Client ids are leased with lock files beside the store
(``<store>.locks/client-<id>.lock``): the kernel drops a dead process's lock.
"""

from __future__ import annotations

import fcntl
import os
import random
import sqlite3
from contextlib import suppress
from pathlib import Path
from typing import cast

from . import schema
from .errors import CorruptStoreError, StoreError, StoreLockedError, StoreOpenError, is_busy
from .storage_backend import SQLITE, DbConnection, StorageBackend
from .values import format_timestamp, utc_now

BUSY_TIMEOUT_MS = 10_000
MAX_CLIENT_ID = 2**32 - 1  # Yjs stays below 2**32; stay interoperable (notes/pycrdt.md, 12)


class SqliteBackend(StorageBackend):
    """The document store in one SQLite file (WAL), the device's engine."""

    dialect = SQLITE

    def __init__(self, path: Path, *, synchronous: str) -> None:
        self.path = path
        self.where = str(path)
        self._synchronous = synchronous
        self._lock_fd: int | None = None

    def connect(self) -> DbConnection:
        path = self.path
        # A store from before files were created private: its -wal and -shm would
        # be created with its mode, so the store is made private first.
        for item in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            schema.make_private(item)
        try:
            conn = sqlite3.connect(
                path, isolation_level=None, check_same_thread=True, timeout=BUSY_TIMEOUT_MS
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreOpenError(f"{path}: cannot switch to WAL mode (got {mode})")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            conn.execute("PRAGMA foreign_keys = ON")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version < schema.SCHEMA_VERSION:
                schema.migrate(conn, version)
            return conn
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise StoreLockedError(f"{path}: locked by another program") from None
            raise CorruptStoreError(f"{path}: cannot open ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise CorruptStoreError(f"{path}: cannot open ({exc})") from None

    def lease_client_id(self, conn: DbConnection) -> int:
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
        return chosen

    def release(self, conn: DbConnection, client_id: int, *, clean: bool) -> None:
        raw = cast(sqlite3.Connection, conn)
        try:
            if clean and client_id:
                with suppress(sqlite3.Error):
                    raw.execute(
                        "UPDATE client_ids SET state='free', since=? WHERE client_id=?",
                        (format_timestamp(utc_now()), client_id),
                    )
        finally:
            raw.close()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def close_quietly(self, conn: DbConnection) -> None:
        with suppress(sqlite3.Error):
            cast(sqlite3.Connection, conn).close()

    def scrub(self, conn: DbConnection) -> bool:
        from . import storage_calls  # reason: its SCRUB_BUSY_TIMEOUT_MS is read at call time

        return storage_calls.scrub(cast(sqlite3.Connection, conn))

    def translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, sqlite3.DatabaseError):
            return CorruptStoreError(f"database error: {one_line(exc)}")
        if isinstance(exc, sqlite3.Error):
            return StoreError(f"database error: {one_line(exc)}")
        return exc


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, schema.PRIVATE_FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
