"""The blind store's database on PostgreSQL: several instances over one database.

Theory of operation
-------------------
The store's SQL (``storage.py``, ``quotas.py``) is written once, with sqlite3's
``?`` placeholders; :class:`PgConnection` gives psycopg's synchronous
connection the same ``execute`` / ``executemany`` and rewrites the placeholders.
The tables live in their own PostgreSQL schema, ``blind_store``
(``schemas/postgres.sql``), beside the Commons document store's tables.

Several instances write to one database at once, so what SQLite's
``BEGIN IMMEDIATE`` gave one file must hold across processes: every write
transaction first takes one transaction-scoped advisory lock
(:data:`WRITE_LOCK`), so writes are serialised as they are on SQLite, and the
quotas (checked, then charged, in one transaction) hold across instances. A read
runs in a ``REPEATABLE READ READ ONLY`` transaction: one consistent snapshot,
no lock. An append also sends ``pg_notify`` on :data:`NEWS_CHANNEL` with the
log's id, inside its transaction: the other instances wake their waiting pulls
when it commits (``pg_listen.py``).

Schema versions are in ``blind_store.meta``; creation and forward migrations
run under their own advisory lock, so instances starting together do not race.
A database of a newer version is refused, never touched.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from typing import Any, TypeVar

from ..pg_listen import describe
from . import quotas
from .owners import SALT_BYTES

T = TypeVar("T")
SCHEMA = "blind_store"
NEWS_CHANNEL = "mirror_blind_news"
WRITE_LOCK = 0x6D69_7272_6F72_0001
"""pg_advisory_xact_lock key of every write transaction."""
SCHEMA_LOCK = 0x6D69_7272_6F72_0002
"""pg_advisory_xact_lock key of creating or migrating the schema."""
MIGRATIONS: dict[int, str] = {}
"""Version N-1 -> N: the file ``schemas/postgres-N.sql`` (none yet: version 2 is first)."""
_PLACEHOLDER = re.compile(r"\?")


class Unavailable(Exception):
    """The database cannot be reached now (retry later)."""


class StoreVersionError(Exception):
    """The database holds a blind store of a version this code does not read."""


def _sql(text: str) -> str:
    # The store's SQL has no literal '?' and no '%': a plain rewrite is exact.
    return _PLACEHOLDER.sub("%s", text)


class PgConnection:
    """sqlite3's ``execute`` / ``executemany`` over a psycopg connection (autocommit:
    transactions are explicit, as the store runs them)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] | None = None, /) -> Any:
        return self.raw.execute(_sql(sql), tuple(parameters) if parameters else None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cursor:
            cursor.executemany(_sql(sql), list(rows))

    def close(self) -> None:
        self.raw.close()


def schema_text(version: int | None = None) -> str:
    name = "postgres.sql" if version is None else f"postgres-{version}.sql"
    return resources.files(__package__).joinpath("schemas", name).read_text(encoding="utf-8")


class PostgresEngine:
    """The blind store's connection to PostgreSQL (one per instance)."""

    def __init__(self, url: str, schema_version: int, today: int) -> None:
        self.url = url
        self.where = describe(url)
        self.schema_version = schema_version
        self.db = self._connect()
        try:
            self._create_or_migrate(today)
            row = self.db.execute("SELECT value FROM meta WHERE key='owner_salt'").fetchone()
            self.salt = bytes.fromhex(row[0])
        except BaseException:
            self.db.close()
            raise

    def _connect(self) -> PgConnection:
        import psycopg

        try:
            raw = psycopg.connect(self.url, autocommit=True)
        except psycopg.Error as exc:
            raise Unavailable(f"{self.where}: cannot connect ({_first_line(exc)})") from None
        db = PgConnection(raw)
        db.execute(f"SET search_path TO {SCHEMA}")
        return db

    def _create_or_migrate(self, today: int) -> None:
        import psycopg

        db = self.db
        try:
            db.execute("BEGIN")
            try:
                db.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
                found = db.execute("SELECT to_regclass('blind_store.meta')").fetchone()[0]
                version = None
                if found is not None:
                    row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
                    version = int(row[0]) if row and str(row[0]).isdigit() else None
                    if version is None:
                        raise StoreVersionError(
                            f"{self.where}: schema {SCHEMA} is not a blind store (no version)")
                if version is None:
                    db.raw.execute(schema_text())
                    db.execute("INSERT INTO meta VALUES ('version', ?)",
                               (str(self.schema_version),))
                    quotas.recount(db)
                elif version > self.schema_version:
                    raise StoreVersionError(
                        f"{self.where}: blind store version {version}, newer than this "
                        f"build's {self.schema_version}: refusing to touch it")
                else:
                    for step in range(version + 1, self.schema_version + 1):
                        if step not in MIGRATIONS:
                            raise StoreVersionError(
                                f"{self.where}: no migration from blind store version "
                                f"{step - 1} to {step}")
                        db.raw.execute(schema_text(step))
                        db.execute("UPDATE meta SET value=? WHERE key='version'", (str(step),))
                db.execute("INSERT INTO meta VALUES ('owner_salt', ?) ON CONFLICT (key) "
                           "DO NOTHING", (os.urandom(SALT_BYTES).hex(),))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except psycopg.Error as exc:
            raise StoreVersionError(f"{self.where}: not a blind store database "
                                    f"({_first_line(exc)})") from None

    def transaction(self, fn: Callable[[Any], T], *, write: bool) -> T:
        """Run *fn(db)* in one transaction (see the module's theory of operation)."""
        import psycopg

        try:
            if self.db.raw.closed:
                self.db = self._connect()
            db = self.db
            if write:
                db.execute("BEGIN")
                db.execute("SELECT pg_advisory_xact_lock(?)", (WRITE_LOCK,))
            else:
                db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                result = fn(db)
            except BaseException:
                if not db.raw.closed:
                    db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return result
        except psycopg.OperationalError as exc:
            # Lost (a restart): no answer was given for this request, so nothing
            # acknowledged is lost; the next request connects again.
            self.db.raw.close()
            raise Unavailable(f"the database is unavailable ({_first_line(exc)})") from None

    def announce(self, db: Any, group_id: bytes) -> None:
        """Tell the other instances, when this transaction commits, that the log changed."""
        db.execute("SELECT pg_notify(?, ?)", (NEWS_CHANNEL, group_id.hex()))

    def close(self) -> None:
        self.db.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
