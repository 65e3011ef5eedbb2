"""The journal: reflections and their mirrorbacks, sharded by month.

Each shard is one document of kind ``journal`` with a root map
``reflections``: reflection id → map::

    id          str
    created_at  str   ISO-8601 UTC (see values.format_timestamp)
    text        Text
    tags        Array[str]
    private     bool
    edited_at   str | None
    starred     bool | absent (absent: not starred)
    mirrorback  map {text, engine, model, created_at} | absent

Shards are ``journal/YYYY-MM`` (class set by the person: ``local`` until they
share the journal) and ``journal-private/YYYY-MM`` (always ``local``): a private
reflection never sits in a document that could sync.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pycrdt import Array, Doc, Map, Text

from .errors import DocumentError, ValueRangeError
from .store import DocStore, StoredDoc
from .sync_class import SyncClass
from .values import check_value, format_timestamp, parse_timestamp, utc_now

log = logging.getLogger("mirror.journal")

KIND = "journal"
ROOT = "reflections"
SHARED_PREFIX = "journal/"
PRIVATE_PREFIX = "journal-private/"
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case
ID_LENGTH = 12
MIN_PREFIX = 4
MAX_TAGS = 64
MAX_TAG_CHARS = 64
MAX_TEXT_CHARS = 1_000_000


@dataclass(frozen=True)
class Mirrorback:
    """The reply to a reflection: its text, the engine and model that wrote it, and when."""

    text: str
    engine: str
    model: str
    created_at: datetime


@dataclass(frozen=True)
class Reflection:
    """One journal entry as read from its shard."""

    id: str
    created_at: datetime
    text: str
    tags: tuple[str, ...] = ()
    private: bool = False
    mirrorback: Mirrorback | None = None
    edited_at: datetime | None = None
    starred: bool = False

    @property
    def shard(self) -> str:
        return shard_id(self.created_at, private=self.private)


def new_reflection_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def shard_id(created_at: datetime, *, private: bool) -> str:
    prefix = PRIVATE_PREFIX if private else SHARED_PREFIX
    return f"{prefix}{created_at:%Y-%m}"


def is_journal_shard(doc_id: str) -> bool:
    return doc_id.startswith((SHARED_PREFIX, PRIVATE_PREFIX))


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for raw in tags:
        tag = raw.strip().lstrip("#").strip().lower()
        if not tag:
            continue
        if len(tag) > MAX_TAG_CHARS:
            raise ValueRangeError(f"tag {tag[:20]!r}… is longer than {MAX_TAG_CHARS} characters")
        if tag not in seen:
            seen.append(tag)
    if len(seen) > MAX_TAGS:
        raise ValueRangeError(f"at most {MAX_TAGS} tags per reflection")
    return tuple(seen)


def _check_text(text: str) -> None:
    if len(text) > MAX_TEXT_CHARS:
        raise ValueRangeError(f"a reflection holds at most {MAX_TEXT_CHARS} characters")
    check_value(text, path="text")


# --------------------------------------------------------------------------- doc level


def _root(doc: Doc[Any]) -> Map[Any]:
    root: Map[Any] = doc.get(ROOT, type=Map)
    return root


def _mirrorback_map(mb: Mirrorback) -> Map[Any]:
    check_value(mb.text, path="mirrorback.text")
    check_value(mb.engine, path="mirrorback.engine")
    check_value(mb.model, path="mirrorback.model")
    return Map(
        {
            "text": mb.text,
            "engine": mb.engine,
            "model": mb.model,
            "created_at": format_timestamp(mb.created_at),
        }
    )


def write_reflection(doc: Doc[Any], reflection: Reflection) -> None:
    """Insert *reflection* into a shard document (one transaction)."""
    _check_text(reflection.text)
    tags = normalize_tags(reflection.tags)
    entry: dict[str, Any] = {
        "id": reflection.id,
        "created_at": format_timestamp(reflection.created_at),
        "text": Text(reflection.text),
        "tags": Array(list(tags)),
        "private": reflection.private,
        "edited_at": format_timestamp(reflection.edited_at) if reflection.edited_at else None,
    }
    if reflection.starred:  # absent means not starred: documents of older writers read the same
        entry["starred"] = True
    if reflection.mirrorback is not None:
        entry["mirrorback"] = _mirrorback_map(reflection.mirrorback)
    with doc.transaction():
        _root(doc)[reflection.id] = Map(entry)


def read_reflection(entry: Any, rid: str) -> Reflection | None:
    """Read one entry; ``None`` (and a log line) for an entry that does not fit the schema."""
    try:
        if not isinstance(entry, Map):
            raise TypeError("entry is not a map")
        data = entry.to_py()
        if not isinstance(data, dict):
            raise TypeError("entry is not a map")
        mb_raw = data.get("mirrorback")
        mirrorback = None
        if isinstance(mb_raw, dict) and isinstance(mb_raw.get("text"), str):
            mirrorback = Mirrorback(
                text=mb_raw["text"],
                engine=str(mb_raw.get("engine", "")),
                model=str(mb_raw.get("model", "")),
                created_at=parse_timestamp(str(mb_raw["created_at"])),
            )
        tags = data.get("tags") or []
        edited = data.get("edited_at")
        text = data.get("text")
        if not isinstance(text, str):
            raise TypeError("text is not text")
        return Reflection(
            id=rid,
            created_at=parse_timestamp(str(data["created_at"])),
            text=text,
            tags=tuple(str(t) for t in tags),
            private=bool(data.get("private", False)),
            mirrorback=mirrorback,
            edited_at=parse_timestamp(edited) if isinstance(edited, str) else None,
            starred=data.get("starred") is True,
        )
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("skipping malformed reflection %s: %s", rid, exc)
        return None


def shard_ids(doc: Doc[Any]) -> set[str]:
    """The ids of the reflections in a shard, without reading them."""
    return set(_root(doc).keys())


def reflection_times(doc: Doc[Any]) -> list[tuple[str, str]]:
    """(id, created_at as stored) of each reflection of a shard, reading nothing else."""
    out = []
    for rid, entry in _root(doc).items():
        at = entry.get("created_at") if isinstance(entry, Map) else None
        if isinstance(at, str):
            out.append((rid, at))
    return out


def read_one(doc: Doc[Any], rid: str) -> Reflection | None:
    entry = _root(doc).get(rid)
    return None if entry is None else read_reflection(entry, rid)


def shard_size(doc: Doc[Any]) -> int:
    """How many reflections a shard holds, without reading them."""
    return len(_root(doc))


def read_reflections(doc: Doc[Any]) -> list[Reflection]:
    out = []
    for rid, entry in _root(doc).items():
        reflection = read_reflection(entry, rid)
        if reflection is not None:
            out.append(reflection)
    return out


def replace_text(text: Text, new: str) -> None:
    """Change a Text to *new* with the smallest edit, at character boundaries.

    pycrdt positions are UTF-8 byte offsets (notes/pycrdt.md, trap 10): the
    common prefix and suffix are found in characters and converted to bytes.
    """
    old = str(text)
    if old == new:
        return
    start = 0
    limit = min(len(old), len(new))
    while start < limit and old[start] == new[start]:
        start += 1
    end_old, end_new = len(old), len(new)
    while end_old > start and end_new > start and old[end_old - 1] == new[end_new - 1]:
        end_old -= 1
        end_new -= 1
    b_start = len(old[:start].encode("utf-8"))
    b_end = len(old[:end_old].encode("utf-8"))
    if b_end > b_start:
        del text[b_start:b_end]
    inserted = new[start:end_new]
    if inserted:
        text.insert(b_start, inserted)


# --------------------------------------------------------------------------- store level


class Journal:
    """Reflections across all shards of a store."""

    def __init__(self, store: DocStore, *, share_class: SyncClass = SyncClass.LOCAL) -> None:
        self.store = store
        self.share_class = share_class

    async def _shard(self, doc_id: str, *, create: bool = True) -> StoredDoc:
        private = doc_id.startswith(PRIVATE_PREFIX)
        cls = SyncClass.LOCAL if private else self.share_class
        return await self.store.open_doc(doc_id, kind=KIND, sync_class=cls, create=create)

    async def add(
        self,
        text: str,
        *,
        tags: Sequence[str] = (),
        private: bool = False,
        created_at: datetime | None = None,
        durable: bool = True,
    ) -> Reflection:
        """Save a new reflection; with *durable*, return only once it is on disk."""
        text = text.strip()
        if not text:
            raise ValueRangeError("a reflection needs some text")
        _check_text(text)
        moment = created_at or utc_now()
        if moment.tzinfo is None:
            raise ValueRangeError("the time of a reflection must carry a time zone")
        reflection = Reflection(
            id=new_reflection_id(),
            created_at=moment,
            text=text,
            tags=normalize_tags(tags),
            private=private,
        )
        self.store.ensure_writable()
        shard = await self._shard(reflection.shard)
        write_reflection(shard.doc, reflection)
        if durable:
            await self.store.wait_durable()
        return reflection

    async def add_many(self, reflections: Sequence[Reflection]) -> int:
        """Write many reflections, one transaction per shard, then wait for disk."""
        by_shard: dict[str, list[Reflection]] = {}
        for r in reflections:
            _check_text(r.text)
            by_shard.setdefault(r.shard, []).append(replace(r, tags=normalize_tags(r.tags)))
        self.store.ensure_writable()
        for doc_id, items in by_shard.items():
            shard = await self._shard(doc_id)
            with shard.doc.transaction():
                for r in items:
                    write_reflection(shard.doc, r)
        await self.store.wait_durable()
        return len(reflections)

    async def shards(self) -> list[StoredDoc]:
        out = []
        for info in self.store.documents(KIND):
            out.append(await self._shard(info.doc_id, create=False))
        return out

    async def all(self) -> list[Reflection]:
        """Every reflection, oldest first."""
        out: list[Reflection] = []
        for shard in await self.shards():
            out.extend(read_reflections(shard.doc))
        out.sort(key=lambda r: (r.created_at, r.id))
        return out

    async def recent(self, limit: int, *, include_private: bool = True) -> list[Reflection]:
        """The newest *limit* reflections, oldest first, reading only the newest shards."""
        by_month: dict[str, list[str]] = {}
        for info in self.store.documents(KIND):
            if info.doc_id.startswith(PRIVATE_PREFIX) and not include_private:
                continue
            by_month.setdefault(info.doc_id.rsplit("/", 1)[-1], []).append(info.doc_id)
        out: list[Reflection] = []
        for month in sorted(by_month, reverse=True):
            if len(out) >= limit:
                break
            for doc_id in by_month[month]:
                out.extend(read_reflections((await self._shard(doc_id, create=False)).doc))
        out.sort(key=lambda r: (r.created_at, r.id))
        return out[-limit:] if limit > 0 else []

    async def count(self) -> int:
        return sum(shard_size(s.doc) for s in await self.shards())

    async def find(self, ref: str) -> tuple[StoredDoc, Reflection]:
        """Find a reflection by its id or a unique prefix of at least 4 characters."""
        ref = ref.strip().lower()
        if len(ref) < MIN_PREFIX:
            raise DocumentError(f"give at least {MIN_PREFIX} characters of the reflection id")
        matches: list[tuple[StoredDoc, str]] = []
        for shard in await self.shards():
            for rid in _root(shard.doc).keys():  # noqa: SIM118 (pycrdt Map is not a dict)
                if rid == ref:
                    matches = [(shard, rid)]
                    break
                if rid.startswith(ref):
                    matches.append((shard, rid))
            else:
                continue
            break
        if not matches:
            raise DocumentError(f"no reflection {ref!r}")
        if len(matches) > 1:
            raise DocumentError(f"{ref!r} matches {len(matches)} reflections; give more of the id")
        shard, rid = matches[0]
        reflection = read_reflection(_root(shard.doc)[rid], rid)
        if reflection is None:
            raise DocumentError(f"reflection {rid} is malformed")
        return shard, reflection

    async def set_mirrorback(self, rid: str, mirrorback: Mirrorback) -> None:
        shard, _ = await self.find(rid)
        self.store.ensure_writable()
        entry = _root(shard.doc)[rid]
        entry["mirrorback"] = _mirrorback_map(mirrorback)
        await self.store.wait_durable()

    async def edit(
        self, rid: str, *, text: str | None = None, tags: Sequence[str] | None = None
    ) -> Reflection:
        shard, reflection = await self.find(rid)
        self.store.ensure_writable()
        entry = _root(shard.doc)[reflection.id]
        with shard.doc.transaction():
            if text is not None:
                text = text.strip()
                if not text:
                    raise ValueRangeError("a reflection needs some text (use delete to remove it)")
                _check_text(text)
                body = entry["text"]
                if str(body) != text and "mirrorback" in entry:
                    # It answered (and quotes) the old words: it goes with them.
                    del entry["mirrorback"]
                replace_text(body, text)
            if tags is not None:
                new_tags = normalize_tags(tags)
                arr = entry["tags"]
                del arr[0 : len(arr)]
                arr.extend(list(new_tags))
            entry["edited_at"] = format_timestamp(utc_now())
        await self.store.wait_durable()
        _, updated = await self.find(reflection.id)
        return updated

    async def set_starred(self, rid: str, starred: bool) -> Reflection:
        """Star or unstar a reflection (not an edit: ``edited_at`` stays)."""
        shard, reflection = await self.find(rid)
        if reflection.starred == starred:
            return reflection
        self.store.ensure_writable()
        entry = _root(shard.doc)[reflection.id]
        entry["starred"] = starred
        await self.store.wait_durable()
        return replace(reflection, starred=starred)

    async def delete(self, rid: str) -> Reflection:
        shard, reflection = await self.find(rid)
        self.store.ensure_writable()
        del _root(shard.doc)[reflection.id]
        await self.store.wait_durable()
        return reflection
