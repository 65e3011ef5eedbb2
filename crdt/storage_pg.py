"""The PostgreSQL engine of the store: the platform's (a Commons server, a blind store).

Imported only when :func:`~crdt.store.open_store` is given a ``postgresql://`` URL, so
a device never needs psycopg. psycopg 3's synchronous API runs on the storage thread
exactly as ``sqlite3`` does (one connection, one thread: no pool, no asyncio).

Theory of operation
-------------------
* The database holds one store (in its ``search_path`` schema). ``mirror_store``
  marks it as Mirror's and holds the schema version (crdt/schemas/postgres.sql). At
  open, under an advisory lock so concurrent instances take turns: an empty schema
  becomes a store (one transaction: PostgreSQL's DDL is transactional); a store of an
  older version is migrated forward; one of a newer version, a database with other
  tables, or a store missing tables is refused with one line, and nothing is written.
* Write transactions take :data:`~crdt.storage_backend.WRITE_LOCK_KEY` (why: the
  POSTGRES dialect's comment) and bump ``mirror_store.changes``, this engine's
  ``PRAGMA data_version``. An acknowledgement still follows COMMIT, which PostgreSQL
  returns once the commit record is flushed (``synchronous_commit``, on by default).
* Client ids are leased with session advisory locks: a process that dies loses its
  connection and with it the lock, as a lock file is dropped by the kernel.
* A lost connection (the server restarted, a network cut) is retried for
  ``reconnect_timeout_s``: the storage thread reconnects, takes its client id's lock
  again and runs the interrupted batch or call again. A batch whose COMMIT was sent
  may have committed unseen: running it again is harmless (an update applied twice
  is a no-op; creates, envelopes, class changes and deletes are idempotent). Past
  the timeout the batch fails as any failed write does: not acknowledged, and the
  store refuses further writes until it is opened again.
* Scrub: see :meth:`PostgresBackend.scrub` for what it does and does not reach.
"""

from __future__ import annotations

import random
from contextlib import suppress
from typing import Any

import psycopg
import psycopg.conninfo
import psycopg.errors
from psycopg.pq import TransactionStatus

from . import schema, schema_files
from .errors import (
    CorruptStoreError,
    NewerSchemaError,
    NotAStoreError,
    StoreError,
    StoreOpenError,
    StoreUnavailableError,
)
from .storage_backend import POSTGRES, WRITE_LOCK_KEY, Connection, StorageBackend, begin_write
from .storage_sqlite import MAX_CLIENT_ID, one_line
from .values import format_timestamp, utc_now

SCHEMA_LOCK_KEY = WRITE_LOCK_KEY + 1
CLIENT_LOCK_BASE = 0x4D495253 << 32
"""Session advisory lock of client id N: ``CLIENT_LOCK_BASE | N`` (ids stay below 2**32)."""
CONNECT_TIMEOUT_S = 10
SCRUB_LOCK_TIMEOUT_MS = 2_000
REQUIRED_TABLES = frozenset({"mirror_store", "meta", "documents", "updates", "client_ids",
                             "envelopes"})
_IN_TRANSACTION = (TransactionStatus.INTRANS, TransactionStatus.INERROR,
                   TransactionStatus.ACTIVE)


def describe(dsn: str) -> str:
    """The database *dsn* names, for messages: ``postgresql://user@host:port/db``, never
    a password."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "a PostgreSQL database (unreadable URL)"
    user = str(parts.get("user") or "")
    host = parts.get("host") or "localhost"
    port = parts.get("port")
    where = f"{host}:{port}" if port else str(host)
    return f"postgresql://{user + '@' if user else ''}{where}/{parts.get('dbname') or ''}"


def _pyformat(sql: str) -> str:
    # Shared statements are written with sqlite3's "?"; none holds a literal "?" or "%".
    return sql.replace("%", "%%").replace("?", "%s")


class PgConnection:
    """A psycopg connection that takes the shared statements as ``sqlite3`` does."""

    dialect = POSTGRES

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Any = (), /) -> psycopg.Cursor[Any]:
        if parameters:
            return self.raw.execute(_pyformat(sql), parameters)
        return self.raw.execute(sql)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status in _IN_TRANSACTION

    def close(self) -> None:
        self.raw.close()


class PostgresBackend(StorageBackend):
    dialect = POSTGRES

    def __init__(
        self,
        dsn: str,
        *,
        create: bool = True,
        reconnect_timeout_s: float = 30.0,
        script: schema_files.SchemaScript | None = None,
    ) -> None:
        self.dsn = dsn
        self.where = describe(dsn)
        self.reconnect_timeout_s = reconnect_timeout_s
        self._create = create
        self.script = script or schema_files.load("postgres")

    # ------------------------------------------------------------------ opening

    def _open(self) -> PgConnection:
        try:
            raw = psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                  application_name="mirror-store")
        except psycopg.Error as exc:
            raise StoreUnavailableError(f"{self.where}: cannot connect ({one_line(exc)})") from None
        return PgConnection(raw)

    def connect(self) -> Connection:
        conn = self._open()
        try:
            self._prepare(conn)
        except BaseException:
            self.close_quietly(conn)
            raise
        return conn

    def _prepare(self, conn: PgConnection) -> None:
        """Check the database, and create or migrate its store (see the module docstring)."""
        try:
            conn.execute("BEGIN")
            conn.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
            tables = {
                str(r[0]) for r in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                )
            }
            if "mirror_store" not in tables:
                if tables:
                    raise NotAStoreError(
                        f"{self.where}: a database of another application (it has tables "
                        "and no mirror_store), not a Mirror store"
                    )
                if not self._create:
                    raise StoreOpenError(f"{self.where}: no Mirror store here")
                self._create_store(conn)
            else:
                self._check_and_migrate(conn, tables)
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            raise StoreOpenError(f"{self.where}: cannot open ({one_line(exc)})") from None
        finally:
            if conn.in_transaction:
                with suppress(psycopg.Error):
                    conn.execute("ROLLBACK")

    def _create_store(self, conn: PgConnection) -> None:
        script = self.script
        for statement in schema_files.split_sql(script.base):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO mirror_store(application, version) VALUES (?, ?)",
            (schema.APPLICATION_ID, script.base_version),
        )
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('created_at', ?), ('schema', ?)",
            (format_timestamp(utc_now()), str(script.version)),
        )
        self._migrate(conn, script.base_version)

    def _check_and_migrate(self, conn: PgConnection, tables: set[str]) -> None:
        row = conn.execute("SELECT application, version FROM mirror_store").fetchone()
        if row is None or int(row[0]) != schema.APPLICATION_ID:
            raise NotAStoreError(f"{self.where}: a database of another application "
                                 "(its mirror_store is not Mirror's)")
        version = int(row[1])
        if version > self.script.version:
            raise NewerSchemaError(
                f"{self.where}: written by a newer Mirror (schema {version}, this one reads "
                f"up to {self.script.version}); upgrade Mirror to open it"
            )
        missing = REQUIRED_TABLES - tables
        if missing:
            raise CorruptStoreError(
                f"{self.where}: damaged Mirror store (missing tables: "
                f"{', '.join(sorted(missing))})"
            )
        self._migrate(conn, version)

    def _migrate(self, conn: PgConnection, version: int) -> None:
        # Inside the open's transaction: every step commits together, or none does.
        while version < self.script.version:
            for statement in schema_files.split_sql(self.script.migrations[version]):
                conn.execute(statement)
            version += 1
            conn.execute("UPDATE mirror_store SET version = ?", (version,))

    # ------------------------------------------------------------------ client ids

    def lease_client_id(self, conn: Connection) -> int:
        now = format_timestamp(utc_now())
        begin_write(conn)  # leasing processes take turns
        try:
            rows = conn.execute("SELECT client_id, state FROM client_ids").fetchall()
            chosen: int | None = None
            for client_id, state in rows:
                if state == "retired" or (chosen is not None and state == "free"):
                    continue
                if not _try_lock(conn, int(client_id)):
                    continue  # a live process holds it
                if state == "in_use":
                    # Its holder died without closing (its session and lock are gone):
                    # unsaved updates may have reached a peer; never reuse it.
                    conn.execute(
                        "UPDATE client_ids SET state='retired', since=? WHERE client_id=?",
                        (now, client_id),
                    )
                    _unlock(conn, int(client_id))
                    continue
                chosen = int(client_id)
            if chosen is None:
                taken = {int(r[0]) for r in rows}
                rng = random.SystemRandom()
                chosen = rng.randint(1, MAX_CLIENT_ID)
                while chosen in taken or not _try_lock(conn, chosen):
                    chosen = rng.randint(1, MAX_CLIENT_ID)
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
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return chosen

    def release(self, conn: Connection, client_id: int, *, clean: bool) -> None:
        try:
            if clean and client_id:
                with suppress(psycopg.Error):
                    conn.execute(
                        "UPDATE client_ids SET state='free', since=? WHERE client_id=?",
                        (format_timestamp(utc_now()), client_id),
                    )
        finally:
            self.close_quietly(conn)  # ends the session: its advisory locks go with it

    def close_quietly(self, conn: Connection) -> None:
        if isinstance(conn, PgConnection):
            with suppress(psycopg.Error):
                conn.close()

    # ------------------------------------------------------------------ failures

    def lost_connection(self, conn: Connection, exc: BaseException) -> bool:
        if not isinstance(exc, psycopg.OperationalError):
            return False
        raw = conn.raw if isinstance(conn, PgConnection) else None
        return raw is None or raw.broken or raw.closed or isinstance(
            exc, psycopg.errors.AdminShutdown | psycopg.errors.CrashShutdown
        )

    def reconnect(self, client_id: int) -> Connection:
        conn = self._open()
        try:
            self._prepare(conn)
            if not _try_lock(conn, client_id):
                raise StoreError(f"{self.where}: client id {client_id} is held by another "
                                 "session")
        except BaseException:
            self.close_quietly(conn)
            raise
        return conn

    def translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, psycopg.Error):
            return StoreError(f"database error: {one_line(exc)}")
        return exc

    # ------------------------------------------------------------------ scrub

    def scrub(self, conn: Connection) -> bool:
        """Rewrite the store's tables from their live rows: ``VACUUM FULL``.

        A deleted row stays in its table's pages (and a large value in its TOAST
        table's) until they are rewritten; plain VACUUM only marks the space free.
        VACUUM FULL writes new files holding the live rows only and unlinks the old
        ones, indexes and TOAST included. What it cannot reach, said plainly: the
        write-ahead log keeps the deleted bytes until its segments are recycled and
        overwritten, and WAL archives, base backups and replicas keep them as long as
        the operator keeps those (docs/INSTALLATION.md). VACUUM FULL needs every other
        session off these tables; False when one held them longer than
        :data:`SCRUB_LOCK_TIMEOUT_MS` (nothing was rewritten; the next scrub does)."""
        conn.execute(f"SET lock_timeout = {SCRUB_LOCK_TIMEOUT_MS}")
        try:
            conn.execute("VACUUM FULL documents, updates, envelopes")
        except psycopg.errors.LockNotAvailable:
            return False
        finally:
            conn.execute("RESET lock_timeout")
        return True


def _try_lock(conn: Connection, client_id: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(?)", (CLIENT_LOCK_BASE | client_id,))
    return bool(row.fetchone()[0])


def _unlock(conn: Connection, client_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(?)", (CLIENT_LOCK_BASE | client_id,))
