"""The functions that run alone on the storage connection: load, compact, envelopes, scrub.

:class:`~crdt.storage.StorageThread` runs each inside a ``Call`` job (and
``compact_document`` itself when a document's log grows); ``apply_all`` applies
what ``read_doc`` returned to a document, on either side. None of them touch
trio. Blobs are opened here, just after SELECT, when the store is encrypted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pycrdt import Doc

from .crypto_at_rest import BlobCipher
from .errors import CompactionError, CorruptStoreError, DocumentError
from .storage_backend import Connection, begin_read, begin_write, dialect_of
from .update_check import UpdateRejected, covers, same_document, same_state
from .values import format_timestamp, utc_now

LOAD_ORIGIN = "mirror.store:load"
SCRUB_BUSY_TIMEOUT_MS = 2_000
EXTERNAL_ORIGIN = "mirror.store:external"


@dataclass(frozen=True)
class CompactionResult:
    doc_id: str
    updates_folded: int
    bytes_before: int
    bytes_after: int


def _open_blob(cipher: BlobCipher | None, what: str, doc_id: str, blob: Any) -> bytes:
    return bytes(blob) if cipher is None else cipher.open(what, doc_id, bytes(blob))


@contextmanager
def read_snapshot(conn: Connection) -> Iterator[None]:
    """One snapshot of the store for every SELECT inside (writers go on meanwhile:
    SQLite's WAL, PostgreSQL's REPEATABLE READ).

    Reads that belong together (a snapshot and the log after it; new rows and
    the cursor past them) must not straddle another process's commit: a
    compaction between them folds rows into a snapshot the reader has already
    read past. Inside a transaction already (a compaction's), nothing to do."""
    if conn.in_transaction:
        yield
        return
    begin_read(conn)
    try:
        yield
    finally:
        _end_read(conn)


def _end_read(conn: Connection) -> None:
    if conn.in_transaction:  # a failed statement may have ended it already
        conn.execute("COMMIT")


def read_doc(
    conn: Connection, doc_id: str, cipher: BlobCipher | None = None
) -> tuple[bytes | None, list[bytes], int]:
    """A document's snapshot, the updates stored after it, and the newest seq of
    either, read from one snapshot of the file (see :func:`read_snapshot`)."""
    with read_snapshot(conn):
        return _read_doc(conn, doc_id, cipher)


def _read_doc(
    conn: Connection, doc_id: str, cipher: BlobCipher | None
) -> tuple[bytes | None, list[bytes], int]:
    row = conn.execute(
        "SELECT snapshot, snapshot_seq FROM documents WHERE doc_id=?", (doc_id,)
    ).fetchone()
    if row is None:
        raise DocumentError(f"no document {doc_id!r}")
    snapshot = _open_blob(cipher, "snapshot", doc_id, row[0]) if row[0] is not None else None
    updates = conn.execute(
        "SELECT seq, data FROM updates WHERE doc_id=? ORDER BY seq", (doc_id,)
    ).fetchall()
    max_seq = max([int(row[1])] + [int(s) for s, _ in updates])
    return snapshot, [_open_blob(cipher, "update", doc_id, d) for _, d in updates], max_seq


def read_doc_if_changed(
    conn: Connection, doc_id: str, mark: int | None, cipher: BlobCipher | None = None
) -> tuple[bytes | None, list[bytes], int] | None:
    """:func:`read_doc`, unless the document's newest stored seq (its update log's,
    or its snapshot's) is still *mark*, or the document is gone: then None."""
    with read_snapshot(conn):
        row = conn.execute(dialect_of(conn).newest_seq_of_doc, (doc_id, doc_id)).fetchone()
        if row is None or int(row[0]) == mark:
            return None
        return _read_doc(conn, doc_id, cipher)


def apply_all(
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


def _same(a: bytes, b: bytes) -> bool:
    try:
        return same_document(a, b)
    except UpdateRejected as exc:  # our own encoder's output did not parse
        raise CompactionError(f"re-encoded document does not parse ({exc}); log kept") from None


def _same_state(a: bytes, b: bytes) -> bool:
    try:
        return same_state(a, b)
    except UpdateRejected as exc:
        raise CompactionError(f"a state vector does not parse ({exc}); log kept") from None


def _covers(stored: tuple[bytes, bytes], live: tuple[bytes, bytes]) -> bool:
    try:
        return covers(*stored, *live)
    except UpdateRejected as exc:
        raise CompactionError(f"a state or delete set does not parse ({exc}); log kept") from None


def compact_document(
    conn: Connection,
    *,
    doc_id: str,
    live: tuple[bytes, bytes] | None,  # a loaded replica: its state, its delete set
    cipher: BlobCipher | None = None,
) -> CompactionResult | None:
    begin_write(conn)
    try:
        snapshot, updates, max_seq = read_doc(conn, doc_id, cipher)
        if not updates:
            conn.execute("ROLLBACK")
            return None
        bytes_before = (len(snapshot) if snapshot else 0) + sum(len(u) for u in updates)
        rebuilt: Doc[Any] = Doc()
        apply_all(rebuilt, doc_id, snapshot, updates, origin=LOAD_ORIGIN)
        encoded = rebuilt.get_update()
        reloaded: Doc[Any] = Doc()
        apply_all(reloaded, doc_id, encoded, [], origin=LOAD_ORIGIN)
        # The round trip is compared in canonical form: yrs writes the keys of
        # dict values, and the clients of a state vector, in hash-map order, so
        # equal documents need not encode to equal bytes.
        state = rebuilt.get_state()
        round_trip = reloaded.get_update()
        if not _same_state(reloaded.get_state(), state) or not _same(round_trip, encoded):
            raise CompactionError(f"document {doc_id}: re-encoded state differs; log kept")
        # What the loaded replica holds was saved before this call ran (writes
        # queued before it commit first), so the database must cover it: its
        # items by state vector, its deletions by delete set. The database may
        # hold more: other processes write to it too.
        if live is not None and not _covers((state, rebuilt.get_update(state)), live):
            raise CompactionError(f"document {doc_id}: the live document holds changes that "
                                  "are not stored; log kept")
        stored = encoded if cipher is None else cipher.seal("snapshot", doc_id, encoded)
        conn.execute(
            "UPDATE documents SET snapshot=?, snapshot_seq=?, compacted_at=? WHERE doc_id=?",
            (stored, max_seq, format_timestamp(utc_now()), doc_id),
        )
        conn.execute("DELETE FROM updates WHERE doc_id=? AND seq <= ?", (doc_id, max_seq))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return CompactionResult(doc_id, len(updates), bytes_before, len(encoded))


def read_envelopes(
    conn: Connection, doc_id: str, cipher: BlobCipher | None = None
) -> list[bytes]:
    """The envelopes kept for *doc_id*, in the order they were first stored."""
    rows = conn.execute(
        "SELECT data FROM envelopes WHERE doc_id=? ORDER BY seq", (doc_id,)
    ).fetchall()
    return [_open_blob(cipher, "envelope", doc_id, r[0]) for r in rows]


def first_envelope_seqs(conn: Connection) -> dict[str, int]:
    """For each document with envelopes, the seq of its first one (arrival order)."""
    rows = conn.execute("SELECT doc_id, MIN(seq) FROM envelopes GROUP BY doc_id")
    return {str(d): int(s) for d, s in rows}


def documents_with_updates(conn: Connection) -> list[str]:
    """Documents whose update log is not empty (what compaction would fold)."""
    return [str(r[0]) for r in conn.execute("SELECT DISTINCT doc_id FROM updates ORDER BY doc_id")]


def scrub(conn: sqlite3.Connection) -> bool:
    """SQLite's scrub (crdt/storage_sqlite.py; PostgreSQL's is in crdt/storage_pg.py).

    Rewrite the file so deleted content is in neither the database nor its WAL.

    VACUUM rebuilds the database from live rows only; the checkpoints before and
    after move everything out of the WAL and truncate it to zero bytes. False
    when another connection kept the WAL from being truncated (its pages are
    overwritten by later writes, and the next scrub finishes the job), or
    kept VACUUM from running at all. A checkpoint or VACUUM waits for readers
    at most :data:`SCRUB_BUSY_TIMEOUT_MS`, not the connection's usual busy
    timeout: the person is waiting for the answer."""
    usual = int(conn.execute("PRAGMA busy_timeout").fetchone()[0])
    conn.execute(f"PRAGMA busy_timeout = {SCRUB_BUSY_TIMEOUT_MS}")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            conn.execute("VACUUM")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return False
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {usual}")
    return not (busy and int(busy[0]))
