"""The on-disk format of a Mirror store, and the checks made before touching a file.

Theory of operation: a store file is SQLite with ``application_id`` set to
:data:`APPLICATION_ID` and ``user_version`` set to the schema version. Before
a file is opened for writing it is inspected through a *read-only* connection:
a file that is not SQLite, that belongs to another application, that SQLite
finds damaged, or that a newer Mirror wrote is refused with a one-line error
and is never modified. A new store is built under a temporary name and
renamed into place, so a crash during creation leaves no half-made store.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from . import schema_files
from .errors import CorruptStoreError, NewerSchemaError, NotAStoreError, StoreOpenError

APPLICATION_ID = 0x4D495252  # "MIRR"
SQLITE_MAGIC = b"SQLite format 3\x00"

# The statements live in crdt/schemas/sqlite.sql (beside postgres.sql): the base
# builds version 1, MIGRATIONS[N] takes a store from N to N + 1, each in one
# transaction. A new store is the base followed by every migration, so both paths
# build the same file.
_SCRIPT = schema_files.load("sqlite")
SCHEMA_VERSION = _SCRIPT.version
SCHEMA_V1 = _SCRIPT.base
MIGRATIONS: dict[int, str] = _SCRIPT.migrations


def _describe_sqlite_error(exc: sqlite3.Error) -> str:
    return str(exc).strip() or type(exc).__name__


def inspect_store_file(path: Path) -> int | None:
    """Check *path* read-only; return its schema version, or ``None`` if it must be created.

    Raises a :class:`StoreOpenError` subclass for anything that is not a
    healthy Mirror store of this or an older version. Never writes to the file.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreOpenError(f"{path}: cannot read ({exc.strerror})") from None
    if not path.is_file():
        raise NotAStoreError(f"{path}: not a regular file")
    if size == 0 and not Path(f"{path}-wal").exists():
        raise NotAStoreError(f"{path}: empty file, not a Mirror store (remove it to start afresh)")
    try:
        with path.open("rb") as fh:
            header = fh.read(100)
    except OSError as exc:
        raise StoreOpenError(f"{path}: cannot read ({exc.strerror})") from None
    if not header.startswith(SQLITE_MAGIC):
        raise NotAStoreError(f"{path}: not a Mirror store (not an SQLite database)")
    if len(header) < 100:
        raise CorruptStoreError(f"{path}: damaged Mirror store (truncated header)")
    app_id = int.from_bytes(header[68:72], "big")
    if app_id != APPLICATION_ID:
        raise NotAStoreError(
            f"{path}: an SQLite database of another application, not a Mirror store"
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise CorruptStoreError(f"{path}: cannot open ({_describe_sqlite_error(exc)})") from None
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise NewerSchemaError(
                f"{path}: written by a newer Mirror (schema {version}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade Mirror to open it"
            )
        rows = conn.execute("PRAGMA quick_check").fetchall()
        if [r[0] for r in rows] != ["ok"]:
            first = rows[0][0] if rows else "no answer"
            raise CorruptStoreError(f"{path}: damaged Mirror store ({first})")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        required = {"meta", "documents", "updates", "client_ids"}
        if version >= 3:
            required.add("envelopes")
        missing = required - tables
        if missing:
            raise CorruptStoreError(
                f"{path}: damaged Mirror store (missing tables: {', '.join(sorted(missing))})"
            )
    except sqlite3.DatabaseError as exc:
        raise CorruptStoreError(
            f"{path}: damaged Mirror store ({_describe_sqlite_error(exc)})"
        ) from None
    finally:
        conn.close()
    return version


PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def create_private_file(path: Path) -> None:
    """Create *path* empty with mode 0600 whatever the umask, for SQLite to open.

    SQLite creates a new database 0644 (less the umask) but gives its -wal and
    -shm files the database's own mode: a store created here stays readable by
    its owner only, side files included."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)


def make_private(path: Path) -> None:
    """Take group and other permissions off *path* if it exists (a store file or its
    directory of locks from before files were created private); never follows a
    symbolic link, never adds a permission."""
    try:
        mode = os.stat(path, follow_symlinks=False).st_mode
        if mode & 0o077 and not stat.S_ISLNK(mode):
            os.chmod(path, stat.S_IMODE(mode) & 0o700)
    except FileNotFoundError:  # gone meanwhile (another process's temporary file)
        return


def create_store_file(
    path: Path, *, created_at: str, meta: dict[str, str] | None = None, rename: bool = True
) -> None:
    """Create an empty store at *path* atomically (build under a temporary name, rename).

    *meta* adds rows to ``meta`` (e.g. the encryption header). With *rename*
    false the store is built at *path* itself, which must not exist (callers
    that build under their own temporary name)."""
    tmp = path.with_name(f".{path.name}.creating-{os.getpid()}") if rename else path
    if not rename and path.exists():
        raise StoreOpenError(f"{path}: exists; not overwritten")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
        leftover.unlink(missing_ok=True)
    create_private_file(tmp)
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN")
        for statement in _split_sql(SCHEMA_V1):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('created_at', ?), ('schema', ?)",
            (created_at, str(SCHEMA_VERSION)),
        )
        for version in range(1, SCHEMA_VERSION):
            for statement in _split_sql(MIGRATIONS[version]):
                conn.execute(statement)
        for key, value in (meta or {}).items():
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    finally:
        conn.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if not rename:
        return
    if path.exists():
        tmp.unlink(missing_ok=True)
        raise StoreOpenError(f"{path}: appeared while being created; not overwritten")
    os.rename(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def migrate(conn: sqlite3.Connection, from_version: int) -> None:
    """Bring a store from *from_version* up to :data:`SCHEMA_VERSION`, one step per transaction."""
    version = from_version
    while version < SCHEMA_VERSION:
        script = MIGRATIONS[version]
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version += 1


def _split_sql(script: str) -> list[str]:
    return schema_files.split_sql(script)
