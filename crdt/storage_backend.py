"""The seam between the storage thread and the database engine under it.

:class:`~crdt.storage.StorageThread` (the queue, group commit, acknowledgement after
COMMIT, refusal after a failure) and the functions of ``crdt/storage_calls.py``
(loading, compaction that verifies before it swaps, external reads) are written
once. What differs between engines is here, in two shapes:

* a :class:`Dialect`: the few statements whose spelling differs (how a write
  transaction begins, an insert that ignores duplicates, "has anyone written since I
  looked?"). Shared statements use ``?`` placeholders; the PostgreSQL connection
  turns them into psycopg's ``%s``. :func:`dialect_of` finds a connection's dialect
  (a plain ``sqlite3.Connection``, or anything without one, is SQLite);
* a :class:`StorageBackend`: what the storage thread asks of the engine itself —
  open (and create, check, migrate) the store, lease a pycrdt client id, scrub
  deleted content, recognise a lost connection and reconnect, translate errors.

``crdt/storage_sqlite.py`` is the device's engine (stdlib ``sqlite3``);
``crdt/storage_pg.py`` is the platform's (psycopg 3, imported only there). See
docs/decisions/0004-postgresql-backend.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

WRITE_LOCK_KEY = 0x4D495252_0000_0001
"""PostgreSQL advisory lock every write transaction takes (see ``POSTGRES``)."""


class Connection(Protocol):
    """What the shared storage code uses of a connection: ``sqlite3.Connection``'s
    ``execute`` (``?`` placeholders) and ``in_transaction``."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    @property
    def in_transaction(self) -> bool: ...


@dataclass(frozen=True)
class Dialect:
    name: str
    begin_write: tuple[str, ...]
    """Start a write transaction that excludes every other writer of the store."""
    begin_read: str
    """Start a transaction whose reads all see one snapshot."""
    insert_document: str
    insert_envelope: str
    data_version: str
    """One integer that changes when another connection commits."""
    bump_changes: str | None
    """Run in every write transaction where the engine has no data_version of its
    own; returns the new value."""
    newest_seq: str
    """The newest seq of the store: its update log's or a snapshot's."""
    newest_seq_of_doc: str
    """One document's newest seq (parameters: doc_id, doc_id); no row if it is gone."""


SQLITE = Dialect(
    name="sqlite",
    begin_write=("BEGIN IMMEDIATE",),
    begin_read="BEGIN",
    insert_document=(
        "INSERT OR IGNORE INTO documents(doc_id, kind, sync_class, created_at)"
        " VALUES (?, ?, ?, ?)"
    ),
    insert_envelope="INSERT OR IGNORE INTO envelopes(doc_id, digest, data) VALUES (?, ?, ?)",
    data_version="PRAGMA data_version",
    bump_changes=None,
    newest_seq=(
        "SELECT MAX(COALESCE((SELECT MAX(seq) FROM updates), 0),"
        " COALESCE((SELECT MAX(snapshot_seq) FROM documents), 0))"
    ),
    newest_seq_of_doc=(
        "SELECT MAX(snapshot_seq, COALESCE((SELECT MAX(seq) FROM updates WHERE doc_id=?), 0))"
        " FROM documents WHERE doc_id=?"
    ),
)

# Writers of one PostgreSQL store take one transaction-scoped advisory lock: SQLite's
# BEGIN IMMEDIATE. Beyond keeping compaction's read-check-swap alone, it is what makes
# "every row after seq N" a safe question: a sequence hands seqs out at INSERT, not at
# COMMIT, so without it a transaction holding seq 10 could commit after one holding
# seq 11 had been read, and a reader's cursor would pass row 10 for good. Under the
# lock the next writer draws its seqs only after the previous one's commit is visible
# (PostgreSQL makes a commit visible before it releases its locks). READ COMMITTED,
# not REPEATABLE READ: each statement then sees what the previous lock holder
# committed; a snapshot taken while waiting for the lock would not.
POSTGRES = Dialect(
    name="postgres",
    begin_write=(
        "BEGIN ISOLATION LEVEL READ COMMITTED",
        f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})",
    ),
    begin_read="BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    insert_document=(
        "INSERT INTO documents(doc_id, kind, sync_class, created_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    insert_envelope=(
        "INSERT INTO envelopes(doc_id, digest, data) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
    ),
    data_version="SELECT changes FROM mirror_store",
    bump_changes="UPDATE mirror_store SET changes = changes + 1 RETURNING changes",
    newest_seq=(
        "SELECT GREATEST(COALESCE((SELECT MAX(seq) FROM updates), 0),"
        " COALESCE((SELECT MAX(snapshot_seq) FROM documents), 0))"
    ),
    newest_seq_of_doc=(
        "SELECT GREATEST(snapshot_seq,"
        " COALESCE((SELECT MAX(seq) FROM updates WHERE doc_id=?), 0))"
        " FROM documents WHERE doc_id=?"
    ),
)


def dialect_of(conn: Any) -> Dialect:
    """The dialect of *conn*: its ``dialect`` attribute, else SQLite's."""
    found = getattr(conn, "dialect", SQLITE)
    return found if isinstance(found, Dialect) else SQLITE


def begin_write(conn: Connection) -> None:
    for statement in dialect_of(conn).begin_write:
        conn.execute(statement)


def begin_read(conn: Connection) -> None:
    conn.execute(dialect_of(conn).begin_read)


class StorageBackend(ABC):
    """One store's engine, used by the storage thread only (one connection, one thread)."""

    dialect: Dialect
    where: str
    """How messages name the store: its file, or its database (never a password)."""
    reconnect_timeout_s: float = 0.0
    """How long a lost connection is retried before the batch fails (0: never)."""

    @abstractmethod
    def connect(self) -> Connection:
        """Open the store (migrating it forward if it is older); the caller closes it."""

    @abstractmethod
    def lease_client_id(self, conn: Connection) -> int:
        """Take a pycrdt client id no live process holds (see crdt/storage.py)."""

    @abstractmethod
    def release(self, conn: Connection, client_id: int, *, clean: bool) -> None:
        """Give the id back (free for reuse when *clean*) and close the connection."""

    @abstractmethod
    def scrub(self, conn: Connection) -> bool:
        """Make deleted rows unrecoverable from the store; False when something kept
        it from finishing (the next scrub does)."""

    def lost_connection(self, conn: Connection, exc: BaseException) -> bool:
        """Whether *exc* means the connection is gone (and a reconnect may help)."""
        return False

    def reconnect(self, client_id: int) -> Connection:
        """A new connection holding *client_id* again (after :meth:`lost_connection`)."""
        raise NotImplementedError

    @abstractmethod
    def close_quietly(self, conn: Connection) -> None:
        """Close a connection that may already be broken."""

    @abstractmethod
    def translate(self, exc: BaseException) -> BaseException:
        """The store error a caller sees for an engine's exception."""
