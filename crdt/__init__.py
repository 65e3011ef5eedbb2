"""Portable data: document kinds on pycrdt, sync classes and the document store
(SQLite; PostgreSQL for the platform).

``crdt`` imports nothing else of Mirror's; ``node`` and ``commons_server`` build on it.
"""

from __future__ import annotations

from .errors import (
    CompactionError,
    CorruptStoreError,
    DocumentError,
    NewerSchemaError,
    NotAStoreError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StoreOpenError,
    StoreUnavailableError,
    StoreWriteError,
    ValueRangeError,
)
from .store import (
    EXTERNAL_ORIGIN,
    LOAD_ORIGIN,
    CompactionResult,
    DocInfo,
    DocStore,
    RefreshResult,
    ScrubResult,
    StoredDoc,
    StoreStatistics,
    open_store,
)
from .sync_class import SyncClass

__all__ = [
    "EXTERNAL_ORIGIN",
    "LOAD_ORIGIN",
    "CompactionError",
    "CompactionResult",
    "CorruptStoreError",
    "DocInfo",
    "DocStore",
    "DocumentError",
    "NewerSchemaError",
    "NotAStoreError",
    "RefreshResult",
    "ScrubResult",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "StoreOpenError",
    "StoreStatistics",
    "StoreUnavailableError",
    "StoreWriteError",
    "StoredDoc",
    "SyncClass",
    "ValueRangeError",
    "open_store",
]
