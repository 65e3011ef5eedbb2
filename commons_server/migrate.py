"""``mirror-commons migrate``: move a Commons from its home's SQLite files into PostgreSQL.

Theory of operation
-------------------
What moves: every document of the home's document store (``mirror.db``: the
Commons documents, their owner-signed envelopes, the moderation state) and the
blind store (``blind-store.db``: its logs, envelopes, snapshots, charges and the
owner salt, so addresses keep their quotas). The target must be empty of both
(a database that already holds a Commons is refused: two would mix); the
schemas are made as a first instance would make them.

Documents go through the document store's own interface, one at a time: the
whole state of each as one update, with its envelopes in the same transaction
(``DocStore.apply_enveloped``), durable before the next. The blind store's rows
are copied in one transaction. Then everything is verified from a fresh
connection: each document encodes the same state as its source
(``crdt.update_check.same_document``) with the same envelopes in the same
order, and each blind-store table holds the same rows (a digest of every row,
in key order). The SQLite files are left as they were: once the instances run
on PostgreSQL, move them out of the home.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from crdt import open_store
from crdt.update_check import same_document

from .blind.limits import StoreLimits
from .blind.storage import DB_NAME as BLIND_DB_NAME
from .blind.storage import BlindStorage
from .pg_listen import describe

MIGRATE_ORIGIN = "mirror.commons:migrate"
BLIND_TABLES = (
    ("meta", "key", "key, value"),
    ("logs", "group_id",
     "group_id, last_seq, covers, bytes, envelopes, retired, forward, owner, retired_day"),
    ("envelopes", "group_id, seq", "group_id, seq, data"),
    ("snapshot_parts", "group_id, part", "group_id, part, data"),
    ("charges", "owner", "owner, bytes, logs"),
)


class MigrationError(Exception):
    """The Commons could not be moved, or did not verify (one line)."""


@dataclass(frozen=True)
class Migrated:
    documents: int
    envelopes: int
    blind_logs: int
    blind_rows: int

    def describe(self, database: str) -> str:
        return (f"moved {self.documents} document(s) with {self.envelopes} envelope(s) and "
                f"{self.blind_logs} blind-store log(s) ({self.blind_rows} rows) into "
                f"{describe(database)}; verified")


async def migrate(home: Path, database: str) -> Migrated:
    """Move the Commons in *home* into the PostgreSQL *database*; verified on return."""
    source_path = home / "mirror.db"
    if not await trio.Path(source_path).exists():
        raise MigrationError(f"{source_path}: no Commons documents to move")
    documents, envelopes = await _move_documents(source_path, database)
    blind_logs = blind_rows = 0
    if await trio.Path(home / BLIND_DB_NAME).exists():
        blind_logs, blind_rows = await trio.to_thread.run_sync(
            _move_blind_store, home, database)
    return Migrated(documents, envelopes, blind_logs, blind_rows)


async def _move_documents(source_path: Path, database: str) -> tuple[int, int]:
    moved: dict[str, tuple[str, bytes, list[bytes]]] = {}
    async with open_store(source_path, create=False) as source, \
            open_store(database) as target:
        if target.documents():
            raise MigrationError(f"{describe(database)} already holds "
                                 f"{len(target.documents())} document(s): refusing to mix "
                                 "two Commons")
        for info in source.documents():
            stored = await source.open_doc(info.doc_id, kind=info.kind, create=False)
            update = stored.doc.get_update()
            envelopes = await source.envelopes(info.doc_id)
            source.unload(info.doc_id)
            copy = await target.open_doc(info.doc_id, kind=info.kind,
                                         sync_class=info.sync_class, create=True)
            if envelopes:
                target.apply_enveloped(copy, [update], envelopes, origin=MIGRATE_ORIGIN)
            else:
                with copy.doc.transaction(origin=MIGRATE_ORIGIN):
                    copy.doc.apply_update(update)
            await target.wait_durable()
            target.unload(info.doc_id)
            moved[info.doc_id] = (info.kind, update, envelopes)
    # Verified from a new connection: what PostgreSQL kept, not what this one holds.
    async with open_store(database, create=False) as check:
        held = {i.doc_id: i for i in check.documents()}
        if set(held) != set(moved):
            raise MigrationError(f"verification failed: {len(moved)} document(s) moved, "
                                 f"{len(held)} in the database")
        for doc_id, (kind, update, envelopes) in moved.items():
            stored = await check.open_doc(doc_id, kind=kind, create=False)
            if not same_document(stored.doc.get_update(), update):
                raise MigrationError(f"verification failed: {doc_id} differs from its source")
            if await check.envelopes(doc_id) != envelopes:
                raise MigrationError(f"verification failed: the envelopes of {doc_id} differ")
            check.unload(doc_id)
    return len(moved), sum(len(e) for _, _, e in moved.values())


def _move_blind_store(home: Path, database: str) -> tuple[int, int]:
    # Made (or moved forward) as a first instance would make it; then the rows.
    BlindStorage.open(home, StoreLimits()).close()  # the SQLite file at version 2
    BlindStorage.open(home, StoreLimits(), database=database).close()
    import psycopg

    source = sqlite3.connect(home / BLIND_DB_NAME)
    try:
        with psycopg.connect(database) as target:
            target.execute("SET search_path TO blind_store")
            (logs,) = target.execute("SELECT COUNT(*) FROM logs").fetchone()  # type: ignore[misc]
            if logs:
                raise MigrationError(f"{describe(database)}: the blind store there already "
                                     f"holds {logs} log(s): refusing to mix two stores")
            rows = 0
            with target.transaction():
                target.execute("DELETE FROM charges")  # a new store's zero rows
                target.execute("DELETE FROM meta WHERE key='owner_salt'")
                for table, _, columns in BLIND_TABLES:
                    where = " WHERE key <> 'version'" if table == "meta" else ""
                    data = source.execute(f"SELECT {columns} FROM {table}{where}").fetchall()
                    marks = ", ".join(["%s"] * len(columns.split(",")))
                    with target.cursor() as cursor:
                        cursor.executemany(
                            f"INSERT INTO {table} ({columns}) VALUES ({marks})", data)
                    rows += len(data)
            for table, order, columns in BLIND_TABLES:
                if _digest(source, table, order, columns, "?") != _digest(
                        target, table, order, columns, "%s"):
                    raise MigrationError(f"verification failed: blind store table {table} "
                                         "differs from its source")
            (count,) = source.execute("SELECT COUNT(*) FROM logs").fetchone()
            return int(count), rows
    finally:
        source.close()


def _digest(db: Any, table: str, order: str, columns: str, mark: str) -> bytes:
    where = f" WHERE key <> {mark}" if table == "meta" else ""
    params = ("version",) if table == "meta" else ()
    digest = hashlib.sha256()
    for row in db.execute(f"SELECT {columns} FROM {table}{where} ORDER BY {order}", params):
        for value in row:
            digest.update(repr(bytes(value) if isinstance(value, memoryview | bytes)
                               else value).encode())
        digest.update(b"\n")
    return digest.digest()
