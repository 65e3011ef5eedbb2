"""Which reflections a listing shows: a date range, tags, starred, the newest N."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from crdt.journal import Reflection, normalize_tags

from .dates import parse_span


@dataclass(frozen=True)
class JournalFilter:
    """``start`` inclusive, ``end`` exclusive (UTC); ``tags``: any of them;
    ``limit``: the newest N of what matches."""

    start: datetime | None = None
    end: datetime | None = None
    tags: tuple[str, ...] = ()
    starred: bool = False
    limit: int | None = None

    @property
    def narrows(self) -> bool:
        """True if it leaves out anything but by ``limit``."""
        return bool(self.start or self.end or self.tags or self.starred)

    def matches(self, r: Reflection) -> bool:
        if self.start is not None and r.created_at < self.start:
            return False
        if self.end is not None and r.created_at >= self.end:
            return False
        if self.tags and not set(self.tags) & set(r.tags):
            return False
        return not self.starred or r.starred

    def apply(self, reflections: Iterable[Reflection]) -> list[Reflection]:
        """The matching reflections, oldest first; with ``limit``, the newest N."""
        found = sorted((r for r in reflections if self.matches(r)),
                       key=lambda r: (r.created_at, r.id))
        if self.limit is not None:
            found = found[-self.limit:] if self.limit > 0 else []
        return found


def journal_filter(
    *,
    now: datetime,
    zone: tzinfo | None = None,
    from_: str | None = None,
    to: str | None = None,
    on: str | None = None,
    tags: Iterable[str] = (),
    starred: bool = False,
    limit: int | None = None,
) -> JournalFilter:
    """A filter from what a person typed: ``--from``, ``--to``, ``--on`` take natural
    dates (:mod:`.dates`); ``--on`` with ``--from`` or ``--to`` narrows further.
    Raises :class:`.dates.DateParseError` (a ``ValueError``) for a date it cannot
    read, and ``ValueError`` for a range that ends before it starts."""
    start: datetime | None = None
    end: datetime | None = None
    if on:
        span = parse_span(on, now, zone)
        start, end = span.start, span.end
    if from_:
        first = parse_span(from_, now, zone).start
        start = first if start is None else max(start, first)
    if to:
        last = parse_span(to, now, zone).end
        end = last if end is None else min(end, last)
    if start is not None and end is not None and end <= start:
        raise ValueError("the dates leave nothing: --to is before --from")
    return JournalFilter(start=start, end=end, tags=normalize_tags(tags), starred=starred,
                         limit=limit)
