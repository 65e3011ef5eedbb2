"""The blind store's SQLite file: logs of opaque envelopes, per group id.

Stdlib ``sqlite3`` on worker threads (``trio.to_thread``), one operation at a
time under a lock, each operation one transaction (WAL, ``synchronous=FULL``):
an upload is acknowledged only after COMMIT.

What the file holds per log: the group id (a hash of the bearer token), a
sequence counter, the envelopes after the snapshot (sequence number and bytes),
the snapshot parts and the sequence number they cover, and for a retired log
its forwarding notice. No token, no key, no timestamps, no addresses.

Errors (all derive from :class:`StoreRefusal`, each with its HTTP status)::

    StoreRefusal
    ├── QuotaExceeded        507  the log (or the store) is full
    ├── SnapshotConflict     409  the snapshot covers less than the current one,
    │                             or more than the log holds
    ├── CursorAhead          409  a pull after a sequence number the log never had
    └── LogRetired           410  a newer epoch replaced this log (carries the notice)
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import trio

from .limits import StoreLimits

log = logging.getLogger("mirror.blindstore")

DB_NAME = "blind-store.db"
SCHEMA_VERSION = 1
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    group_id  BLOB PRIMARY KEY,
    last_seq  INTEGER NOT NULL DEFAULT 0,
    covers    INTEGER NOT NULL DEFAULT 0,
    bytes     INTEGER NOT NULL DEFAULT 0,
    envelopes INTEGER NOT NULL DEFAULT 0,
    retired   INTEGER NOT NULL DEFAULT 0,
    forward   BLOB
);
CREATE TABLE IF NOT EXISTS envelopes (
    group_id BLOB NOT NULL, seq INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (group_id, seq)
);
CREATE TABLE IF NOT EXISTS snapshot_parts (
    group_id BLOB NOT NULL, part INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (group_id, part)
);
"""


class StoreRefusal(Exception):
    status = 400


class QuotaExceeded(StoreRefusal):
    status = 507


class SnapshotConflict(StoreRefusal):
    status = 409


class CursorAhead(StoreRefusal):
    status = 409


class LogRetired(StoreRefusal):
    status = 410

    def __init__(self, forward: bytes) -> None:
        super().__init__("this log was retired: the group moved to a newer epoch")
        self.forward = forward


class StoreFileError(Exception):
    """The file is not a blind store of a version this code reads."""


@dataclass(frozen=True, slots=True)
class Appended:
    first_seq: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class Pulled:
    records: list[tuple[int, bytes]]
    cursor: int
    """Pull after this next time."""
    head: int
    """The log's last sequence number."""
    covers: int
    more: bool


@dataclass(frozen=True, slots=True)
class Usage:
    last_seq: int
    covers: int
    envelopes: int
    bytes: int


class BlindStorage:
    """The store's database. Create with :meth:`open` (blocking; call at startup)."""

    def __init__(self, connection: sqlite3.Connection, limits: StoreLimits) -> None:
        self._db = connection
        self.limits = limits
        self._lock = trio.Lock()

    @classmethod
    def open(cls, home: Path, limits: StoreLimits) -> BlindStorage:
        home.mkdir(parents=True, exist_ok=True)
        path = home / DB_NAME
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
            row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('version', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise StoreFileError(f"{path}: blind store version {row[0]}, expected "
                                     f"{SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise StoreFileError(f"{path}: not a blind store database ({exc})") from None
        return cls(db, limits)

    def close(self) -> None:
        self._db.close()

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            return await trio.to_thread.run_sync(self._transaction, fn)

    def _transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    # ------------------------------------------------------------------ operations

    async def append(self, group_id: bytes, envelopes: Sequence[bytes]) -> Appended:
        return await self._run(lambda db: self._append(db, group_id, envelopes))

    def _append(self, db: sqlite3.Connection, group_id: bytes, envelopes: Sequence[bytes]) \
            -> Appended:
        row = self._log_or_new(db, group_id)
        last_seq, _, used, count = row
        added = sum(len(e) for e in envelopes)
        if count + len(envelopes) > self.limits.max_group_envelopes:
            raise QuotaExceeded(
                f"the log holds {count} envelopes (quota {self.limits.max_group_envelopes}); "
                "upload a snapshot to compact it")
        if used + added > self.limits.max_group_bytes:
            raise QuotaExceeded(
                f"the log holds {used} bytes (quota {self.limits.max_group_bytes}); "
                "upload a snapshot to compact it")
        db.executemany(
            "INSERT INTO envelopes (group_id, seq, data) VALUES (?, ?, ?)",
            [(group_id, last_seq + i + 1, e) for i, e in enumerate(envelopes)],
        )
        new_last = last_seq + len(envelopes)
        db.execute(
            "UPDATE logs SET last_seq=?, bytes=bytes+?, envelopes=envelopes+? WHERE group_id=?",
            (new_last, added, len(envelopes), group_id),
        )
        return Appended(last_seq + 1, new_last)

    async def pull(self, group_id: bytes, after: int) -> Pulled:
        return await self._run(lambda db: self._pull(db, group_id, after))

    def _pull(self, db: sqlite3.Connection, group_id: bytes, after: int) -> Pulled:
        row = self._log(db, group_id)
        if row is None:
            if after:
                raise CursorAhead(f"the log has no entry {after}: pull from 0")
            return Pulled([], 0, 0, 0, False)
        last_seq, covers, _, _ = row
        if after > last_seq:
            raise CursorAhead(f"the log ends at {last_seq}, not {after}: pull from 0")
        records: list[tuple[int, bytes]] = []
        size = 0
        cursor = after
        if after < covers:
            for (data,) in db.execute(
                "SELECT data FROM snapshot_parts WHERE group_id=? ORDER BY part", (group_id,)
            ):
                records.append((covers, data))
                size += len(data)
            cursor = covers
        more = False
        for seq, data in db.execute(
            "SELECT seq, data FROM envelopes WHERE group_id=? AND seq>? ORDER BY seq",
            (group_id, cursor),
        ):
            if records and size >= self.limits.max_pull_bytes:
                more = True
                break
            records.append((seq, data))
            size += len(data)
            cursor = seq
        return Pulled(records, cursor, last_seq, covers, more)

    async def put_snapshot(self, group_id: bytes, covers: int, parts: Sequence[bytes]) -> int:
        """Replace the snapshot; drop the envelopes it covers. Returns how many were dropped."""
        return await self._run(lambda db: self._put_snapshot(db, group_id, covers, parts))

    def _put_snapshot(
        self, db: sqlite3.Connection, group_id: bytes, covers: int, parts: Sequence[bytes]
    ) -> int:
        row = self._log_or_new(db, group_id)
        last_seq, current, used, count = row
        if covers < current:
            raise SnapshotConflict(
                f"a snapshot covering {current} is already there; this one covers {covers}")
        if covers > last_seq:
            raise SnapshotConflict(f"the log ends at {last_seq}; a snapshot cannot cover {covers}")
        old_parts = db.execute(
            "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM snapshot_parts WHERE group_id=?",
            (group_id,),
        ).fetchone()[0]
        dropped_count, dropped_bytes = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM envelopes "
            "WHERE group_id=? AND seq<=?", (group_id, covers),
        ).fetchone()
        new_bytes = used - old_parts - dropped_bytes + sum(len(p) for p in parts)
        if new_bytes > self.limits.max_group_bytes:
            raise QuotaExceeded(
                f"the snapshot would leave {new_bytes} bytes in the log "
                f"(quota {self.limits.max_group_bytes})")
        db.execute("DELETE FROM snapshot_parts WHERE group_id=?", (group_id,))
        db.executemany(
            "INSERT INTO snapshot_parts (group_id, part, data) VALUES (?, ?, ?)",
            [(group_id, i, p) for i, p in enumerate(parts)],
        )
        db.execute("DELETE FROM envelopes WHERE group_id=? AND seq<=?", (group_id, covers))
        db.execute(
            "UPDATE logs SET covers=?, bytes=?, envelopes=? WHERE group_id=?",
            (covers, new_bytes, count - dropped_count, group_id),
        )
        return int(dropped_count)

    async def retire(self, group_id: bytes, forward: bytes) -> None:
        """Drop the log's content for good and refuse its token from now on."""
        await self._run(lambda db: self._retire(db, group_id, forward))

    def _retire(self, db: sqlite3.Connection, group_id: bytes, forward: bytes) -> None:
        self._log_or_new(db, group_id)
        db.execute("DELETE FROM envelopes WHERE group_id=?", (group_id,))
        db.execute("DELETE FROM snapshot_parts WHERE group_id=?", (group_id,))
        db.execute(
            "UPDATE logs SET retired=1, forward=?, bytes=0, envelopes=0 WHERE group_id=?",
            (forward, group_id),
        )

    async def usage(self, group_id: bytes) -> Usage:
        def read(db: sqlite3.Connection) -> Usage:
            row = self._log(db, group_id)
            if row is None:
                return Usage(0, 0, 0, 0)
            return Usage(last_seq=row[0], covers=row[1], bytes=row[2], envelopes=row[3])

        return await self._run(read)

    async def statistics(self) -> dict[str, int]:
        def read(db: sqlite3.Connection) -> dict[str, int]:
            logs, retired, size, envelopes = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(retired), 0), COALESCE(SUM(bytes), 0), "
                "COALESCE(SUM(envelopes), 0) FROM logs"
            ).fetchone()
            return {"logs": logs, "retired_logs": retired, "bytes": size, "envelopes": envelopes}

        return await self._run(read)

    # ------------------------------------------------------------------ helpers

    def _log(self, db: sqlite3.Connection, group_id: bytes) -> tuple[int, int, int, int] | None:
        """``(last_seq, covers, bytes, envelopes)`` of a live log, None if unknown."""
        row = db.execute(
            "SELECT last_seq, covers, bytes, envelopes, retired, forward FROM logs "
            "WHERE group_id=?", (group_id,),
        ).fetchone()
        if row is None:
            return None
        if row[4]:
            raise LogRetired(row[5] or b"")
        return int(row[0]), int(row[1]), int(row[2]), int(row[3])

    def _log_or_new(self, db: sqlite3.Connection, group_id: bytes) -> tuple[int, int, int, int]:
        row = self._log(db, group_id)
        if row is not None:
            return row
        (count,) = db.execute("SELECT COUNT(*) FROM logs").fetchone()
        if count >= self.limits.max_groups:
            raise QuotaExceeded("this store keeps no more groups")
        db.execute("INSERT INTO logs (group_id) VALUES (?)", (group_id,))
        return 0, 0, 0, 0
