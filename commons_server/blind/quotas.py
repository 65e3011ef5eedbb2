"""The blind store's quotas in total and per address, and the expiry of retired logs.

Theory of operation
-------------------
Each log is charged to an *owner*: a 24-bit keyed hash of the address that
created it (``owners.py``). The table ``charges`` keeps, per owner, the bytes
(envelopes, snapshot parts, a retired log's forwarding notice) and the number of
logs (live or retired) charged to it, and one row with the empty owner for the
whole store. Every change to a log updates both rows in the same transaction as
the change, so the figures are exact and cost two small writes rather than a
scan of every log. A log that existed before version 2 has no owner and is
charged to the store only.

Growth is refused (507) when it would take the store past ``max_store_bytes`` or
the log's owner past ``max_address_bytes``; a new log when the store holds
``max_groups`` logs or its owner ``max_address_logs``.

A retired log (``logs.retired`` = 1) keeps its forwarding notice and its charges
for ``retired_keep_days`` after its retirement (the day is the only time the
store keeps). Then it becomes a *tombstone* (``retired`` = 2): the notice goes,
the charges are given back, and only the group id stays, so the old token is
still refused. Were it forgotten, a removed device that knows the old secret
could open the old log again and feed a device that missed the removal.
Tombstones beyond ``max_tombstones`` are forgotten, oldest first: an address
retires at most ``max_address_logs`` logs per ``retired_keep_days``, so a few
dozen addresses would take over a century to push a real one out.

The functions take any connection with ``execute`` (sqlite3's, or the
PostgreSQL adapter's); the SQL is portable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .limits import StoreLimits

STORE: bytes = b""
"""The owner of the row that holds the whole store's figures."""
LIVE, RETIRED, TOMBSTONE = 0, 1, 2
"""Values of ``logs.retired``."""
EXPIRE_BATCH = 10_000
"""Retired logs deleted per transaction (the rest in the next one)."""

SCHEMA_2 = """
CREATE TABLE IF NOT EXISTS charges (
    owner BLOB PRIMARY KEY,
    bytes INTEGER NOT NULL DEFAULT 0,
    logs  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS logs_retired_day ON logs (retired_day);
"""
"""Version 2's additions beside the columns ``logs.owner`` and ``logs.retired_day``."""


class Connection(Protocol):
    """The one method of a database connection the quota checks use."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class QuotaRefusal(Exception):
    """Growth or a new log refused by a quota (the store answers 507)."""


@dataclass(frozen=True, slots=True)
class Figures:
    """The store's usage against its quotas (what ``/metrics`` reports)."""

    bytes: int
    logs: int
    retired_logs: int
    tombstones: int
    owners: int
    """Owners (address hashes) with something charged."""
    owners_at_quota: int
    """Owners that can create no log or add no byte more."""
    largest_owner_bytes: int


def migrate_to_2(db: Connection, today: int) -> None:
    """Add owners, charges and retirement days to a version 1 store."""
    db.execute("ALTER TABLE logs ADD COLUMN owner BLOB")
    db.execute("ALTER TABLE logs ADD COLUMN retired_day INTEGER")
    for statement in SCHEMA_2.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("UPDATE logs SET retired_day=? WHERE retired<>0", (today,))
    recount(db)


def recount(db: Connection) -> None:
    """Rebuild ``charges`` from the logs (a migration, or a check)."""
    db.execute("DELETE FROM charges")
    rows = db.execute(
        "SELECT owner, COALESCE(SUM(bytes + COALESCE(LENGTH(forward), 0)), 0), COUNT(*) "
        "FROM logs WHERE retired<>? GROUP BY owner", (TOMBSTONE,)).fetchall()
    total_bytes = total_logs = 0
    for owner, size, logs in rows:
        total_bytes += int(size)
        total_logs += int(logs)
        if owner:
            db.execute("INSERT INTO charges (owner, bytes, logs) VALUES (?, ?, ?)",
                       (bytes(owner), int(size), int(logs)))
    db.execute("INSERT INTO charges (owner, bytes, logs) VALUES (?, ?, ?)",
               (STORE, total_bytes, total_logs))


def charged(db: Connection, owner: bytes) -> tuple[int, int]:
    """``(bytes, logs)`` charged to *owner* (``STORE``: the whole store)."""
    row = db.execute("SELECT bytes, logs FROM charges WHERE owner=?", (owner,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def charge(db: Connection, owner: bytes | None, add_bytes: int, add_logs: int) -> None:
    """Add to the store's figures and to *owner*'s (None: a log older than owners)."""
    for who in (STORE, owner) if owner else (STORE,):
        db.execute(
            "INSERT INTO charges (owner, bytes, logs) VALUES (?, ?, ?) "
            "ON CONFLICT (owner) DO UPDATE SET bytes = charges.bytes + excluded.bytes, "
            "logs = charges.logs + excluded.logs", (who, add_bytes, add_logs))
    if owner:
        db.execute("DELETE FROM charges WHERE owner=? AND bytes<=0 AND logs<=0", (owner,))


def check_new_log(db: Connection, owner: bytes, limits: StoreLimits) -> None:
    if charged(db, STORE)[1] >= limits.max_groups:
        raise QuotaRefusal("this store keeps no more groups")
    if charged(db, owner)[1] >= limits.max_address_logs:
        raise QuotaRefusal(
            f"logs created from this address: {limits.max_address_logs} (its quota); "
            f"a retired log counts for {limits.retired_keep_days} days")


def check_growth(db: Connection, owner: bytes | None, add_bytes: int,
                 limits: StoreLimits) -> None:
    if add_bytes <= 0:
        return
    used = charged(db, STORE)[0]
    if used + add_bytes > limits.max_store_bytes:
        raise QuotaRefusal(f"the store is full ({used} of {limits.max_store_bytes} bytes)")
    if owner:
        used = charged(db, owner)[0]
        if used + add_bytes > limits.max_address_bytes:
            raise QuotaRefusal(
                f"the logs created from this address hold {used} bytes "
                f"(quota {limits.max_address_bytes})")


def expire_retired(db: Connection, today: int, limits: StoreLimits) -> int:
    """Turn retired logs older than ``retired_keep_days`` into tombstones, and forget
    the oldest tombstones beyond ``max_tombstones``; how many logs changed."""
    rows = db.execute(
        "SELECT group_id, owner, COALESCE(LENGTH(forward), 0) FROM logs "
        "WHERE retired=? AND retired_day <= ? LIMIT ?",
        (RETIRED, today - limits.retired_keep_days, EXPIRE_BATCH)).fetchall()
    for group_id, owner, size in rows:
        charge(db, bytes(owner) if owner else None, -int(size), -1)
        db.execute("UPDATE logs SET retired=?, forward=NULL, owner=NULL WHERE group_id=?",
                   (TOMBSTONE, group_id))
    (tombstones,) = db.execute("SELECT COUNT(*) FROM logs WHERE retired=?",
                               (TOMBSTONE,)).fetchone()
    excess = min(int(tombstones) - limits.max_tombstones, EXPIRE_BATCH)
    if excess > 0:
        db.execute(
            "DELETE FROM logs WHERE group_id IN (SELECT group_id FROM logs WHERE retired=? "
            "ORDER BY retired_day LIMIT ?)", (TOMBSTONE, excess))
    return len(rows) + max(excess, 0)


def figures(db: Connection, limits: StoreLimits) -> Figures:
    total_bytes, total_logs = charged(db, STORE)
    retired, tombstones = db.execute(
        "SELECT COALESCE(SUM(CASE WHEN retired=? THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN retired=? THEN 1 ELSE 0 END), 0) FROM logs",
        (RETIRED, TOMBSTONE)).fetchone()
    owners, at_quota, largest = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN bytes >= ? OR logs >= ? THEN 1 ELSE 0 END), 0),"
        " COALESCE(MAX(bytes), 0) FROM charges WHERE owner <> ?",
        (limits.max_address_bytes, limits.max_address_logs, STORE)).fetchone()
    return Figures(bytes=total_bytes, logs=total_logs, retired_logs=int(retired),
                   tombstones=int(tombstones), owners=int(owners), owners_at_quota=int(at_quota),
                   largest_owner_bytes=int(largest))
