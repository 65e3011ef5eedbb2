"""The journal as a browsable timeline: every reflection in memory, kept fresh per shard.

A page of the timeline, a search or a filter over 10,000 reflections must answer in a
few milliseconds (the web interface), so this keeps one immutable row per reflection, newest
first. A shard that changes (this process, another one, a peer: the store's listener
calls :meth:`JournalView.mark_stale`) is read again on the next query; the others are
not touched. Nothing is written anywhere: search never puts plaintext outside the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from crdt.journal import Reflection

SNIPPET_CHARS = 280
MAX_PER_PAGE = 200

ShardReader = Callable[[], Awaitable[dict[str, list[Reflection]]]]
OneShardReader = Callable[[str], Awaitable[list[Reflection]]]


@dataclass(frozen=True)
class JournalQuery:
    """What the journal view asks for: filters, a page and its size."""

    text: str = ""
    since: date | None = None
    until: date | None = None  # inclusive
    tags: tuple[str, ...] = ()
    starred: bool = False
    private: str = ""  # "" all, "only", "none"
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class JournalPage:
    """One page of the journal view and the totals around it."""

    total: int  # reflections matching the query
    everything: int  # reflections in the journal
    page: int
    per_page: int
    items: tuple[Reflection, ...]
    tags: tuple[tuple[str, int], ...]  # every tag with its count, most used first


class JournalView:
    """Reflections newest first, and the queries of the Journal page."""

    def __init__(self, read_all: ShardReader, read_shard: OneShardReader) -> None:
        self._read_all = read_all
        self._read_shard = read_shard
        self._shards: dict[str, list[Reflection]] | None = None
        self._stale: set[str] = set()
        self._rows: list[Reflection] | None = None
        self._lower: dict[str, str] = {}
        self._tags: tuple[tuple[str, int], ...] = ()
        self._pairs: list[tuple[str, Reflection]] = []

    def mark_stale(self, doc_id: str) -> None:
        """Called from the store's listener (no reading there): read *doc_id* again."""
        self._stale.add(doc_id)
        self._rows = None

    async def rows(self) -> list[Reflection]:
        if self._shards is None:
            self._shards = await self._read_all()
            self._stale.clear()
            self._rows = None
        while self._stale:
            doc_id = self._stale.pop()
            found = await self._read_shard(doc_id)
            if found:
                self._shards[doc_id] = found
            else:
                self._shards.pop(doc_id, None)
            self._rows = None
        if self._rows is None:
            rows = [r for shard in self._shards.values() for r in shard]
            rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
            self._rows = rows
            self._lower = {r.id: _haystack(r) for r in rows}
            self._tags = tag_counts(rows)
            self._pairs = [(self._lower[r.id], r) for r in rows]
        return self._rows

    async def query(self, q: JournalQuery) -> JournalPage:
        rows = await self.rows()
        words = q.text.lower().split()
        wanted_tags = {t.lower().lstrip("#") for t in q.tags}
        narrows = wanted_tags or q.starred or q.private or q.since or q.until
        if not (words or narrows):
            found = rows  # the whole timeline: nothing to test row by row
        elif not narrows:  # words only, the common search: one pass in a comprehension
            pairs = self._pairs
            for word in words:  # each word narrows what the next one scans
                pairs = [(hay, r) for hay, r in pairs if word in hay]
            found = [r for _, r in pairs]
        else:
            found = self._matching(rows, q, words, wanted_tags)
        per = max(1, min(q.per_page, MAX_PER_PAGE))
        start = (max(q.page, 1) - 1) * per
        return JournalPage(len(found), len(rows), max(q.page, 1), per,
                           tuple(found[start:start + per]), self._tags)

    def _matching(self, rows: list[Reflection], q: JournalQuery, words: list[str],
                  wanted_tags: set[str]) -> list[Reflection]:
        lower = self._lower
        found: list[Reflection] = []
        for r in rows:
            if q.private == "only" and not r.private:
                continue
            if q.private == "none" and r.private:
                continue
            if q.starred and not r.starred:
                continue
            if wanted_tags and not wanted_tags <= set(r.tags):
                continue
            if q.since is not None or q.until is not None:
                day = r.created_at.astimezone().date()
                if (q.since is not None and day < q.since) or \
                        (q.until is not None and day > q.until):
                    continue
            if words:
                hay = lower[r.id]
                if not all(w in hay for w in words):
                    continue
            found.append(r)
        return found

    async def on_day(self, month: int, day: int) -> list[Reflection]:
        """Reflections written on this calendar day in earlier years, newest first."""
        this_year = datetime.now(UTC).astimezone().year
        out = []
        for r in await self.rows():
            local = r.created_at.astimezone()
            if local.month == month and local.day == day and local.year < this_year:
                out.append(r)
        return out


def _haystack(r: Reflection) -> str:
    return (r.text + " " + " ".join("#" + t for t in r.tags)).lower()


def tag_counts(rows: Iterable[Reflection]) -> tuple[tuple[str, int], ...]:
    counts: dict[str, int] = {}
    for r in rows:
        for t in r.tags:
            counts[t] = counts.get(t, 0) + 1
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def snippet(text: str, words: Sequence[str], width: int = SNIPPET_CHARS) -> str:
    """The part of *text* around the first searched word (the start when none)."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    lower = flat.lower()
    at = min((i for i in (lower.find(w.lower()) for w in words) if i >= 0), default=0)
    start = max(0, at - width // 3)
    part = flat[start:start + width]
    return ("…" if start else "") + part + ("…" if start + width < len(flat) else "")
