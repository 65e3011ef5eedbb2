"""The settings document (``local``): preferences that belong to this device."""

from __future__ import annotations

from typing import Any

from pycrdt import Map

from .store import DocStore, StoredDoc
from .sync_class import SyncClass
from .values import check_value

KIND = "settings"
DOC_ID = "settings"
ROOT = "settings"


class Settings:
    """Key/value preferences in a ``local`` document; values are checked before writing."""

    def __init__(self, stored: StoredDoc) -> None:
        self._stored = stored

    @classmethod
    async def open(cls, store: DocStore) -> Settings:
        stored = await store.open_doc(DOC_ID, kind=KIND, sync_class=SyncClass.LOCAL)
        return cls(stored)

    @property
    def _map(self) -> Map[Any]:
        root: Map[Any] = self._stored.doc.get(ROOT, type=Map)
        return root

    def get(self, key: str, default: Any = None) -> Any:
        value = self._map.get(key, default)
        return value.to_py() if isinstance(value, Map) else value

    def set(self, key: str, value: Any) -> None:
        check_value(value, path=key)
        self._map[key] = value

    def as_dict(self) -> dict[str, Any]:
        data = self._map.to_py()
        return dict(data) if isinstance(data, dict) else {}
