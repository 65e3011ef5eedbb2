"""One store, on either engine, for tests that run against SQLite and PostgreSQL alike.

The ``store_target`` fixture (tests/conftest.py) is parametrised ``sqlite`` /
``postgres``; a test opens ``open_store(target.location)`` and looks underneath with
the helpers here, written once for both engines:

- :meth:`StoreTarget.rows` reads with a separate connection (``?`` placeholders);
- :meth:`StoreTarget.commit_update` writes an update row as another process's store
  would (PostgreSQL: under the write lock, bumping the change counter);
- :meth:`StoreTarget.check_integrity` asks the engine whether the store is sound;
- :meth:`StoreTarget.clone` copies the store (a fault test runs from one base state).
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.postgres_helper import PostgresServer

# The btree indexes of a PostgreSQL store (amcheck verifies them).
PG_INDEXES = ("updates_pkey", "updates_by_doc", "documents_pkey", "client_ids_pkey",
              "envelopes_pkey", "envelopes_by_doc", "envelopes_doc_id_digest_key")


@dataclass
class StoreTarget:
    engine: str
    location: Path | str
    """What open_store takes: the SQLite file, or the PostgreSQL URL."""
    server: PostgresServer | None = None

    @property
    def dbname(self) -> str:
        assert isinstance(self.location, str)
        return self.location.rsplit("/", 1)[1]

    def _connect(self) -> Any:
        if self.engine == "sqlite":
            return sqlite3.connect(self.location, isolation_level=None)
        import psycopg

        from crdt.storage_pg import PgConnection

        return PgConnection(psycopg.connect(str(self.location), autocommit=True))

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._connect()
        try:
            return [tuple(r) for r in conn.execute(sql, params).fetchall()]
        finally:
            conn.close()

    def commit_update(self, doc_id: str, writer: int, data: bytes) -> None:
        """Commit one update row as another process's store does."""
        conn = self._connect()
        try:
            if self.engine == "sqlite":
                conn.execute("INSERT INTO updates(doc_id, writer, data) VALUES (?, ?, ?)",
                             (doc_id, writer, data))
                return
            from crdt.storage_backend import POSTGRES, begin_write

            begin_write(conn)
            conn.execute("INSERT INTO updates(doc_id, writer, data) VALUES (?, ?, ?)",
                         (doc_id, writer, data))
            assert POSTGRES.bump_changes is not None
            conn.execute(POSTGRES.bump_changes)
            conn.execute("COMMIT")
        finally:
            conn.close()

    def stored_bytes(self) -> bytes:
        """Every byte the engine keeps for this store on disk, for canary checks.

        SQLite: the file, its WAL and shared memory. PostgreSQL: every file of the
        database's directory (tables, indexes, TOAST, free-space maps, the catalogue's
        statistics) after a CHECKPOINT wrote the shared buffers out. Not the server's
        write-ahead log: what a scrub cannot reach there is documented
        (crdt/storage_pg.py, PostgresBackend.scrub)."""
        if self.engine == "sqlite":
            assert isinstance(self.location, Path)
            db = self.location
            return b"".join(
                p.read_bytes() for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()
            )
        assert self.server is not None
        self.server.sql(self.dbname, "CHECKPOINT")
        ((oid,),) = self.server.sql(
            "postgres", f"SELECT oid FROM pg_database WHERE datname = '{self.dbname}'"
        )
        out = []
        for path in sorted((self.server.data / "base" / str(oid)).iterdir()):
            try:
                out.append(path.read_bytes())
            except FileNotFoundError:  # unlinked meanwhile
                continue
        return b"".join(out)

    def check_integrity(self) -> None:
        """SQLite's integrity_check; on PostgreSQL, amcheck over every index of the store
        (heap and index agree, keys in order) and the row counts every table answers."""
        if self.engine == "sqlite":
            assert self.rows("PRAGMA integrity_check") == [("ok",)]
            return
        conn = self._connect()
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            for index in PG_INDEXES:
                conn.execute(f"SELECT bt_index_check('{index}'::regclass, true)")
            for table in ("documents", "updates", "envelopes", "client_ids"):
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        finally:
            conn.close()

    def clone(self, name: str) -> StoreTarget:
        """A copy of the store as it is now (nothing may have it open)."""
        if self.engine == "sqlite":
            assert isinstance(self.location, Path)
            copy = self.location.with_name(f"{name}.db")
            shutil.copy(self.location, copy)
            return StoreTarget("sqlite", copy)
        assert self.server is not None
        dbname = f"{self.dbname}_{name}"
        self.server.sql("postgres", f'CREATE DATABASE "{dbname}" TEMPLATE "{self.dbname}"')
        self.server.track_database(dbname)
        return StoreTarget("postgres", self.server.dsn(dbname), self.server)
