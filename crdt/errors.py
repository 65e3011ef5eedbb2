"""Errors raised by the document store.

Everything the store raises on purpose derives from :class:`StoreError`::

    StoreError
    ├── StoreOpenError            the file cannot be used as a Mirror store
    │   ├── NotAStoreError        not SQLite, or SQLite of another application
    │   │                         (PostgreSQL: a database with another application's tables)
    │   ├── CorruptStoreError     SQLite says the file is damaged
    │   ├── NewerSchemaError      written by a newer Mirror; upgrade first
    │   ├── StoreLockedError      the file is locked by another program for too long
    │   └── StoreUnavailableError the PostgreSQL server cannot be reached
    ├── StoreWriteError           a write failed; nothing of its batch was committed
    ├── StoreClosedError          the store was closed, or failed earlier
    ├── CompactionError           compaction could not verify its result; nothing changed
    ├── DocumentError             a document is unknown, or its kind or class conflicts
    └── ValueRangeError           a value pycrdt cannot hold faithfully (also a ValueError)

``sqlite3``, psycopg and pycrdt exceptions are translated where they enter (the storage
thread and the load path); callers never need to catch them.
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the document store raises on purpose."""


class StoreOpenError(StoreError):
    """The file cannot be opened as a Mirror store. The file was not modified."""


class NotAStoreError(StoreOpenError):
    """The file is not an SQLite database, or belongs to another application."""


class CorruptStoreError(StoreOpenError):
    """SQLite reports the file as damaged."""


class NewerSchemaError(StoreOpenError):
    """The file was written by a newer version of Mirror."""


class StoreLockedError(StoreOpenError):
    """Another program held the database lock for too long."""


class StoreUnavailableError(StoreOpenError):
    """The database server (PostgreSQL) cannot be reached or refused the connection."""


class StoreWriteError(StoreError):
    """A write batch failed and was rolled back: nothing of it is stored."""


class StoreClosedError(StoreError):
    """The store is closed, or an earlier write failed and it refuses further writes."""


class CompactionError(StoreError):
    """Compaction could not verify that the re-encoded state equals the live one."""


class DocumentError(StoreError):
    """A document is unknown, malformed, or opened with a conflicting kind or class."""


class ValueRangeError(StoreError, ValueError):
    """A value cannot be stored faithfully in a CRDT document."""
