"""The blind store's SQLite file: logs of opaque envelopes, per group id.

Stdlib ``sqlite3`` on worker threads (``trio.to_thread``), one operation at a
time under a lock, each operation one transaction (WAL, ``synchronous=FULL``):
an upload is acknowledged only after COMMIT.

What the file holds per log: the group id (a hash of the bearer token), a
sequence counter, the envelopes after the snapshot (sequence number and bytes),
the snapshot parts and the sequence number they cover, the 24-bit owner value of
the address that created it (``owners.py``), and for a retired log its
forwarding notice and the day of its retirement. No token, no key, no address,
no other time. ``quotas.py`` keeps the quotas and the expiry of retired logs.

Errors (all derive from :class:`StoreRefusal`, each with its HTTP status)::

    StoreRefusal
    ├── QuotaExceeded        507  the log, the address that created it, or the
    │                             store is at its quota
    ├── SnapshotConflict     409  the snapshot covers less than the current one,
    │                             or more than the log holds
    ├── CursorAhead          409  a pull after a sequence number the log never had
    ├── LogRetired           410  a newer epoch replaced this log (carries the notice)
    └── DatabaseUnavailable  503  PostgreSQL cannot be reached now (retry)

Two engines: a SQLite file in the home (one instance), or a PostgreSQL
database that several instances share (``postgres.py``; ``--database
postgresql://...``). The SQL is the same; each engine runs it in its own kind of
transaction, and the schema of each is a file in ``schemas/``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import trio

from ..pg_listen import is_postgres_url
from . import quotas
from .limits import StoreLimits
from .owners import SALT_BYTES, owner_of
from .quotas import QuotaRefusal

log = logging.getLogger("mirror.blindstore")

DB_NAME = "blind-store.db"
SCHEMA_VERSION = 2
T = TypeVar("T")
DAY_S = 86_400
RECORD_HEADER_BYTES = 12
"""A pull answer's framing per record (``protocol.store.encode_pull``)."""


def _sqlite_schema() -> str:
    return resources.files(__package__).joinpath("schemas", "sqlite.sql").read_text(
        encoding="utf-8")


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


class DatabaseUnavailable(StoreRefusal):
    status = 503


class StoreFileError(Exception):
    """The file (or database) is not a blind store of a version this code reads."""


class SqliteEngine:
    """The store's SQLite file: every operation one ``BEGIN IMMEDIATE`` transaction."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.db = connection
        row = connection.execute("SELECT value FROM meta WHERE key='owner_salt'").fetchone()
        self.salt = bytes.fromhex(row[0])

    def transaction(self, fn: Callable[[Any], T], *, write: bool) -> T:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def announce(self, db: Any, group_id: bytes) -> None:
        """One process per file: its app wakes its own pulls."""

    def close(self) -> None:
        self.db.close()


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

    def __init__(self, engine: Any, limits: StoreLimits,
                 clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self.limits = limits
        self._lock = trio.Lock()
        self._clock = clock
        self._swept_day = -1
        self._salt: bytes = engine.salt

    @property
    def _db(self) -> Any:
        """The engine's connection (sqlite3's, or PostgreSQL's adapter)."""
        return self._engine.db

    @property
    def shared(self) -> bool:
        """Several instances may serve this database (PostgreSQL)."""
        return not isinstance(self._engine, SqliteEngine)

    @property
    def database_url(self) -> str | None:
        return str(self._engine.url) if self.shared else None

    @classmethod
    def open(cls, home: Path, limits: StoreLimits,
             clock: Callable[[], float] = time.time, *,
             database: str | None = None) -> BlindStorage:
        """The store in *home* (a SQLite file), or in the PostgreSQL *database*."""
        if database is not None:
            return cls.open_postgres(database, limits, clock)
        home.mkdir(parents=True, exist_ok=True)
        path = home / DB_NAME
        try:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            try:
                cls._create_or_migrate(db, path, int(clock() // DAY_S))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise StoreFileError(f"{path}: not a blind store database ({exc})") from None
        return cls(SqliteEngine(db), limits, clock)

    @classmethod
    def open_postgres(cls, url: str, limits: StoreLimits,
                      clock: Callable[[], float] = time.time) -> BlindStorage:
        """The store in the PostgreSQL database at *url* (schema made or moved forward)."""
        from .postgres import PostgresEngine, StoreVersionError, Unavailable

        if not is_postgres_url(url):
            raise StoreFileError(f"{url[:40]}: a database is a postgresql:// address")
        try:
            engine = PostgresEngine(url, SCHEMA_VERSION, int(clock() // DAY_S))
        except (StoreVersionError, Unavailable) as exc:
            raise StoreFileError(str(exc)) from None
        return cls(engine, limits, clock)

    @staticmethod
    def _create_or_migrate(db: sqlite3.Connection, path: Path, today: int) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        if row is None:
            for statement in _sqlite_schema().split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute("INSERT INTO meta VALUES ('version', ?)", (str(SCHEMA_VERSION),))
            quotas.recount(db)
        elif row[0] == "1":
            quotas.migrate_to_2(db, today)
            db.execute("UPDATE meta SET value=? WHERE key='version'", (str(SCHEMA_VERSION),))
        elif row[0] != str(SCHEMA_VERSION):
            raise StoreFileError(f"{path}: blind store version {row[0]}, expected "
                                 f"{SCHEMA_VERSION}")
        db.execute("INSERT OR IGNORE INTO meta VALUES ('owner_salt', ?)",
                   (os.urandom(SALT_BYTES).hex(),))

    def close(self) -> None:
        self._engine.close()

    def owner_of(self, host: str) -> bytes:
        """The owner value of a log created from the address *host*."""
        return owner_of(self._salt, host)

    def today(self) -> int:
        return int(self._clock() // DAY_S)

    def _expire(self, db: sqlite3.Connection, today: int) -> None:
        if quotas.expire_retired(db, today, self.limits) >= quotas.EXPIRE_BATCH:
            self._swept_day = -1  # more are due: the next operation goes on

    async def _run(self, fn: Callable[[Any], T], *, write: bool = True) -> T:
        today = self.today()
        async with self._lock:
            try:
                if today != self._swept_day:  # once a day: retired logs past their time
                    self._swept_day = today  # (its own transaction: whatever comes next)
                    await trio.to_thread.run_sync(self._transaction,
                                                  lambda db: self._expire(db, today), True)
                return await trio.to_thread.run_sync(self._transaction, fn, write)
            except QuotaRefusal as exc:
                raise QuotaExceeded(str(exc)) from None

    def _transaction(self, fn: Callable[[Any], T], write: bool) -> T:
        from .postgres import Unavailable

        try:
            result: T = self._engine.transaction(fn, write=write)
        except Unavailable as exc:
            raise DatabaseUnavailable(str(exc)) from None
        return result

    # ------------------------------------------------------------------ operations

    async def append(self, group_id: bytes, envelopes: Sequence[bytes], owner: bytes) -> Appended:
        """Append to the log (made and charged to *owner* if it is new)."""
        return await self._run(lambda db: self._append(db, group_id, envelopes, owner))

    def _append(self, db: sqlite3.Connection, group_id: bytes, envelopes: Sequence[bytes],
                owner: bytes) -> Appended:
        log_ = self._log_or_new(db, group_id, owner)
        added = sum(len(e) for e in envelopes)
        if log_.envelopes + len(envelopes) > self.limits.max_group_envelopes:
            raise QuotaExceeded(
                f"the log holds {log_.envelopes} envelopes "
                f"(quota {self.limits.max_group_envelopes}); upload a snapshot to compact it")
        if log_.used + added > self.limits.max_group_bytes:
            raise QuotaExceeded(
                f"the log holds {log_.used} bytes (quota {self.limits.max_group_bytes}); "
                "upload a snapshot to compact it")
        quotas.check_growth(db, log_.owner, added, self.limits)
        db.executemany(
            "INSERT INTO envelopes (group_id, seq, data) VALUES (?, ?, ?)",
            [(group_id, log_.last_seq + i + 1, e) for i, e in enumerate(envelopes)],
        )
        new_last = log_.last_seq + len(envelopes)
        db.execute(
            "UPDATE logs SET last_seq=?, bytes=bytes+?, envelopes=envelopes+? WHERE group_id=?",
            (new_last, added, len(envelopes), group_id),
        )
        quotas.charge(db, log_.owner, added, 0)
        self._engine.announce(db, group_id)
        return Appended(log_.last_seq + 1, new_last)

    async def pull_size(self, group_id: bytes, after: int) -> int:
        """Bytes of the answer :meth:`pull` would give now (read without the data)."""
        def read(db: sqlite3.Connection) -> int:
            plan = self._plan(db, group_id, after)
            return plan.size if plan is not None else 0

        return await self._run(read, write=False)

    async def pull(self, group_id: bytes, after: int, max_bytes: int | None = None) -> Pulled:
        """Records after *after*: a snapshot first if *after* is below what it covers,
        then envelopes up to ``max_pull_bytes``; at most *max_bytes* in all (what the
        caller has room for: if the log grew since :meth:`pull_size`, the rest is
        left for the next pull)."""
        return await self._run(lambda db: self._pull(db, group_id, after, max_bytes),
                               write=False)

    def _pull(self, db: sqlite3.Connection, group_id: bytes, after: int,
              max_bytes: int | None) -> Pulled:
        plan = self._plan(db, group_id, after)
        if plan is None:
            return Pulled([], 0, 0, 0, False)
        room = plan.size if max_bytes is None else max_bytes
        records: list[tuple[int, bytes]] = []
        size = 0
        cursor = after
        more = plan.more
        if plan.snapshot_parts:
            if plan.snapshot_bytes > room:
                return Pulled([], after, plan.head, plan.covers, True)
            for (data,) in db.execute(
                "SELECT data FROM snapshot_parts WHERE group_id=? ORDER BY part", (group_id,)
            ):
                records.append((plan.covers, data))
            size = plan.snapshot_bytes
            cursor = plan.covers
        last = cursor
        for seq, length in plan.envelopes:
            if size + RECORD_HEADER_BYTES + length > room:
                more = True
                break
            size += RECORD_HEADER_BYTES + length
            last = seq
        if last > cursor:
            records.extend(db.execute(
                "SELECT seq, data FROM envelopes WHERE group_id=? AND seq>? AND seq<=? "
                "ORDER BY seq", (group_id, cursor, last)))
            cursor = last
        return Pulled(records, cursor, plan.head, plan.covers, more)

    def _plan(self, db: sqlite3.Connection, group_id: bytes, after: int) -> _Plan | None:
        """What a pull after *after* returns, by sizes only; None if there is no log."""
        log_ = self._log(db, group_id)
        if log_ is None:
            if after:
                raise CursorAhead(f"the log has no entry {after}: pull from 0")
            return None
        if after > log_.last_seq:
            raise CursorAhead(f"the log ends at {log_.last_seq}, not {after}: pull from 0")
        parts = snapshot = 0
        cursor = after
        if after < log_.covers:
            parts, snapshot = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM snapshot_parts "
                "WHERE group_id=?", (group_id,)).fetchone()
            snapshot += parts * RECORD_HEADER_BYTES
            cursor = log_.covers
        size = int(snapshot)
        envelopes: list[tuple[int, int]] = []
        more = False
        for seq, length in db.execute(
            "SELECT seq, LENGTH(data) FROM envelopes WHERE group_id=? AND seq>? ORDER BY seq",
            (group_id, cursor),
        ):
            if (parts or envelopes) and size >= self.limits.max_pull_bytes:
                more = True
                break
            envelopes.append((int(seq), int(length)))
            size += RECORD_HEADER_BYTES + int(length)
        return _Plan(log_.last_seq, log_.covers, int(parts), int(snapshot), envelopes, size, more)

    async def put_snapshot(self, group_id: bytes, covers: int, parts: Sequence[bytes],
                           owner: bytes) -> int:
        """Replace the snapshot; drop the envelopes it covers. Returns how many were dropped."""
        return await self._run(lambda db: self._put_snapshot(db, group_id, covers, parts, owner))

    def _put_snapshot(
        self, db: sqlite3.Connection, group_id: bytes, covers: int, parts: Sequence[bytes],
        owner: bytes,
    ) -> int:
        log_ = self._log_or_new(db, group_id, owner)
        if covers < log_.covers:
            raise SnapshotConflict(
                f"a snapshot covering {log_.covers} is already there; this one covers {covers}")
        if covers > log_.last_seq:
            raise SnapshotConflict(
                f"the log ends at {log_.last_seq}; a snapshot cannot cover {covers}")
        old_parts = db.execute(
            "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM snapshot_parts WHERE group_id=?",
            (group_id,),
        ).fetchone()[0]
        dropped_count, dropped_bytes = db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM envelopes "
            "WHERE group_id=? AND seq<=?", (group_id, covers),
        ).fetchone()
        new_bytes = log_.used - old_parts - dropped_bytes + sum(len(p) for p in parts)
        if new_bytes > self.limits.max_group_bytes:
            raise QuotaExceeded(
                f"the snapshot would leave {new_bytes} bytes in the log "
                f"(quota {self.limits.max_group_bytes})")
        quotas.check_growth(db, log_.owner, new_bytes - log_.used, self.limits)
        db.execute("DELETE FROM snapshot_parts WHERE group_id=?", (group_id,))
        db.executemany(
            "INSERT INTO snapshot_parts (group_id, part, data) VALUES (?, ?, ?)",
            [(group_id, i, p) for i, p in enumerate(parts)],
        )
        db.execute("DELETE FROM envelopes WHERE group_id=? AND seq<=?", (group_id, covers))
        db.execute(
            "UPDATE logs SET covers=?, bytes=?, envelopes=? WHERE group_id=?",
            (covers, new_bytes, log_.envelopes - dropped_count, group_id),
        )
        quotas.charge(db, log_.owner, new_bytes - log_.used, 0)
        self._engine.announce(db, group_id)
        return int(dropped_count)

    async def retire(self, group_id: bytes, forward: bytes, owner: bytes) -> None:
        """Drop the log's content for good and refuse its token from now on (for
        ``retired_keep_days``); a log that did not exist is made, charged to *owner*."""
        today = self.today()
        await self._run(lambda db: self._retire(db, group_id, forward, owner, today))

    def _retire(self, db: sqlite3.Connection, group_id: bytes, forward: bytes, owner: bytes,
                today: int) -> None:
        log_ = self._log_or_new(db, group_id, owner)
        if log_.new:
            quotas.check_growth(db, log_.owner, len(forward), self.limits)
        db.execute("DELETE FROM envelopes WHERE group_id=?", (group_id,))
        db.execute("DELETE FROM snapshot_parts WHERE group_id=?", (group_id,))
        db.execute(
            "UPDATE logs SET retired=?, forward=?, bytes=0, envelopes=0, retired_day=? "
            "WHERE group_id=?", (quotas.RETIRED, forward, today, group_id),
        )
        quotas.charge(db, log_.owner, len(forward) - log_.used, 0)
        self._engine.announce(db, group_id)

    async def usage(self, group_id: bytes) -> Usage:
        def read(db: sqlite3.Connection) -> Usage:
            log_ = self._log(db, group_id)
            if log_ is None:
                return Usage(0, 0, 0, 0)
            return Usage(last_seq=log_.last_seq, covers=log_.covers, bytes=log_.used,
                         envelopes=log_.envelopes)

        return await self._run(read, write=False)

    async def figures(self) -> quotas.Figures:
        """The store's usage against its quotas."""
        return await self._run(lambda db: quotas.figures(db, self.limits), write=False)

    async def statistics(self) -> dict[str, int]:
        def read(db: sqlite3.Connection) -> dict[str, int]:
            logs, retired, size, envelopes = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN retired<>0 THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(bytes), 0), "
                "COALESCE(SUM(envelopes), 0) FROM logs"
            ).fetchone()
            return {"logs": int(logs), "retired_logs": int(retired), "bytes": int(size),
                    "envelopes": int(envelopes)}

        return await self._run(read, write=False)

    # ------------------------------------------------------------------ helpers

    def _log(self, db: sqlite3.Connection, group_id: bytes) -> _Log | None:
        """The live log *group_id*, None if unknown; LogRetired if retired."""
        row = db.execute(
            "SELECT last_seq, covers, bytes, envelopes, retired, forward, owner FROM logs "
            "WHERE group_id=?", (group_id,),
        ).fetchone()
        if row is None:
            return None
        if row[4]:
            raise LogRetired(row[5] or b"")
        return _Log(int(row[0]), int(row[1]), int(row[2]), int(row[3]),
                    bytes(row[6]) if row[6] else None, new=False)

    def _log_or_new(self, db: sqlite3.Connection, group_id: bytes, owner: bytes) -> _Log:
        found = self._log(db, group_id)
        if found is not None:
            return found
        quotas.check_new_log(db, owner, self.limits)
        db.execute("INSERT INTO logs (group_id, owner) VALUES (?, ?)", (group_id, owner))
        quotas.charge(db, owner, 0, 1)
        return _Log(0, 0, 0, 0, owner, new=True)


@dataclass(frozen=True, slots=True)
class _Log:
    last_seq: int
    covers: int
    used: int
    """Bytes of its envelopes and snapshot."""
    envelopes: int
    owner: bytes | None
    """Whom it is charged to (None: made before owners were kept)."""
    new: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    head: int
    covers: int
    snapshot_parts: int
    """Parts of the snapshot the answer starts with (0: none)."""
    snapshot_bytes: int
    envelopes: list[tuple[int, int]]
    """``(seq, bytes)`` of the envelopes it carries."""
    size: int
    """Bytes of the answer, framing included."""
    more: bool
