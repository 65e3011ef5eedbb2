"""Derived documents: the engine's index, identity graph, tensions, patterns, evolution notes.

Evidence per sync class (DESIGN.md, Documents): every derived kind exists in
two scopes.

* ``Scope.LOCAL`` — ``local/<kind>``: derived from every reflection, private
  ones included. Always sync class ``local``, and its id starts with
  ``local/``, which the sync catalogue refuses whatever the recorded class.
* ``Scope.SHARED`` — ``<kind>``: derived from shared reflections only, so it
  may follow the journal's class (``devices`` once the person shares the
  journal). Nothing learned from a private reflection is ever written here.

The engine's index (``local/engine-index``, always local) keeps one compact
JSON string per reflection: what extraction found, with evidence, and the
terms used to rank related reflections. Everything else can be rebuilt from it,
and is, record by record, when a reflection is deleted or edited: its entry
leaves (or is replaced) with it (``node.engine.understanding``).

Records are keyed in their maps by an opaque digest of their name
(``record_slot``), and carry the name in their ``id`` field. A CRDT map keeps
the key of a deleted entry as a tombstone that compaction cannot drop, so a
record keyed by its name ("person:quendolyn") left that name in the file after
the reflection that taught it was deleted and its content scrubbed; a digest
does not. Records written before this (keyed by the name itself) are read
alike and re-keyed when next written.

Records are maps of plain values (text, booleans, integers within ±2**53 checked
by ``check_value``, timestamps as ISO strings, lists and maps of those). pycrdt
returns integers as floats; readers use ``read_int``. Updating a record sets
only the fields that changed.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pycrdt import Map

from .store import DocStore, StoredDoc
from .sync_class import SyncClass
from .values import check_value

INDEX_KIND = "engine-index"
INDEX_DOC_ID = "local/engine-index"
GRAPH_KIND = "identity-graph"
TENSIONS_KIND = "tensions"
PATTERNS_KIND = "patterns"
EVOLUTION_KIND = "evolution"
DERIVED_KINDS = (GRAPH_KIND, TENSIONS_KIND, PATTERNS_KIND, EVOLUTION_KIND)
LOCAL_PREFIX = "local/"
META_ROOT = "meta"
INDEX_ROOT = "entries"
ID_FIELD = "id"  # a record's name, inside the record (its map key is a digest)
SLOT_PERSON = b"mirror/rec-slot"


def record_slot(key: str) -> str:
    """The map key a record named *key* is stored under: BLAKE2b-128, hex.

    Deterministic, so every device that derives the same record writes the
    same slot and the CRDT merges them."""
    return hashlib.blake2b(key.encode(), digest_size=16, person=SLOT_PERSON).hexdigest()


class Scope(enum.StrEnum):
    """Which reflections a derived document may learn from."""

    LOCAL = "local"  # all reflections; never leaves the device
    SHARED = "shared"  # shared reflections only; follows the journal's class


def derived_doc_id(kind: str, scope: Scope) -> str:
    return f"{LOCAL_PREFIX}{kind}" if scope is Scope.LOCAL else kind


def scope_class(scope: Scope, share_class: SyncClass) -> SyncClass:
    return SyncClass.LOCAL if scope is Scope.LOCAL else share_class


@dataclass
class DerivedDoc:
    """One derived document: named maps of records, plus a ``meta`` map."""

    stored: StoredDoc
    scope: Scope

    @property
    def doc_id(self) -> str:
        return self.stored.doc_id

    def root(self, name: str) -> Map[Any]:
        root: Map[Any] = self.stored.doc.get(name, type=Map)
        return root

    def get(self, root: str, key: str) -> dict[str, Any] | None:
        return _plain(self.entry(root, key))

    def entry(self, root: str, key: str) -> Map[Any] | None:
        """The record named *key* as its CRDT map (no copy), or None."""
        target = self.root(root)
        for slot in (record_slot(key), key):
            value = target.get(slot)
            if isinstance(value, Map):
                return value
        return None

    def entries(self, root: str) -> Iterator[tuple[str, Map[Any]]]:
        """Every record of *root* as (name, CRDT map), without copying its fields."""
        for slot, value in self.root(root).items():
            if isinstance(value, Map):
                name = value.get(ID_FIELD)
                yield (name if isinstance(name, str) else slot), value

    def records(self, root: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every record of *root* as (name, fields); the ``id`` field is the name."""
        for slot, value in self.root(root).items():
            data = _plain(value)
            if data is not None:
                yield str(data.pop(ID_FIELD, slot)), data

    def put(self, root: str, key: str, record: Mapping[str, Any]) -> None:
        """Write *record* under *key*, changing only the fields that differ."""
        check_value(dict(record), path=f"{root}.{key}")
        target = self.root(root)
        slot = record_slot(key)
        if key != slot and isinstance(target.get(key), Map):
            del target[key]  # re-keyed: the old entry's content goes with it
        existing = target.get(slot)
        if not isinstance(existing, Map):
            target[slot] = Map({**dict(record), ID_FIELD: key})
            return
        for field, value in record.items():
            if existing.get(field) != value:
                existing[field] = value

    def delete(self, root: str, key: str) -> None:
        target = self.root(root)
        for slot in (record_slot(key), key):
            if slot in target:
                del target[slot]

    def clear(self, root: str) -> None:
        target = self.root(root)
        for key in list(target.keys()):
            del target[key]

    def meta(self, key: str, default: Any = None) -> Any:
        return self.root(META_ROOT).get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        check_value(value, path=f"meta.{key}")
        if self.root(META_ROOT).get(key) != value:
            self.root(META_ROOT)[key] = value


def _plain(value: object) -> dict[str, Any] | None:
    if isinstance(value, Map):
        data = value.to_py()
        return dict(data) if isinstance(data, dict) else None
    return None


async def open_derived(
    store: DocStore, kind: str, scope: Scope, *, share_class: SyncClass
) -> DerivedDoc:
    """Open (creating if needed) *kind* in *scope*. An existing shared document is
    moved to *share_class* if the person changed it; a local one never moves."""
    doc_id = derived_doc_id(kind, scope)
    cls = scope_class(scope, share_class)
    stored = await store.open_doc(doc_id, kind=kind, sync_class=cls)
    if stored.sync_class is not cls and scope is Scope.SHARED:
        await store.set_sync_class(doc_id, cls)
    elif stored.sync_class is not SyncClass.LOCAL and scope is Scope.LOCAL:
        await store.set_sync_class(doc_id, SyncClass.LOCAL)  # defence in depth
    return DerivedDoc(stored, scope)


# --------------------------------------------------------------------------- the index


class EngineIndex:
    """Reflection id → compact JSON of its extraction. Always ``local``."""

    def __init__(self, stored: StoredDoc) -> None:
        self.stored = stored

    @classmethod
    async def open(cls, store: DocStore) -> EngineIndex:
        stored = await store.open_doc(INDEX_DOC_ID, kind=INDEX_KIND, sync_class=SyncClass.LOCAL)
        return cls(stored)

    @property
    def _map(self) -> Map[Any]:
        root: Map[Any] = self.stored.doc.get(INDEX_ROOT, type=Map)
        return root

    def put(self, rid: str, entry: str) -> None:
        check_value(entry, path=f"index.{rid}")
        self._map[rid] = entry

    def get(self, rid: str) -> str | None:
        value = self._map.get(rid)
        return value if isinstance(value, str) else None

    def remove(self, rid: str) -> None:
        if rid in self._map:
            del self._map[rid]

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, str) and rid in self._map

    def __len__(self) -> int:
        return len(self._map)

    def ids(self) -> set[str]:
        return set(self._map.keys())

    def items(self) -> list[tuple[str, str]]:
        """Every entry (one pass over the map, strings only: cheap)."""
        return [(k, v) for k, v in self._map.items() if isinstance(v, str)]
