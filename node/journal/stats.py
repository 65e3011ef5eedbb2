"""On this day, and simple stats: entries per week, streaks of days, words.

Days and weeks are the person's local ones (*zone*, the machine's when
``None``); weeks start on Monday. *today* is passed in so tests pin it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from crdt.journal import Reflection

from .tags import TagCount, tag_counts

DEFAULT_WEEKS = 12
MAX_WEEKS = 520
TOP_TAGS = 5


def local_date(moment: datetime, zone: tzinfo | None) -> date:
    return (moment.astimezone() if zone is None else moment.astimezone(zone)).date()


def word_count(text: str) -> int:
    """Words as ``wc -w`` counts them: runs of characters between white space."""
    return len(text.split())


# --------------------------------------------------------------------------- on this day


@dataclass(frozen=True)
class YearAgo:
    """Reflections written on this day in an earlier year."""

    years: int  # how many years before today
    reflections: tuple[Reflection, ...]  # oldest first


def on_this_day(reflections: Iterable[Reflection], today: date,
                zone: tzinfo | None = None) -> list[YearAgo]:
    """What was written on today's month and day in earlier years, the nearest year
    first. On 28 February of a year without a 29th, the 29ths of leap years count."""
    days = {(today.month, today.day)}
    if today.month == 2 and today.day == 28 and not _leap(today.year):
        days.add((2, 29))
    by_year: dict[int, list[Reflection]] = {}
    for r in reflections:
        d = local_date(r.created_at, zone)
        if (d.month, d.day) in days and d.year < today.year:
            by_year.setdefault(d.year, []).append(r)
    return [
        YearAgo(today.year - year,
                tuple(sorted(by_year[year], key=lambda r: (r.created_at, r.id))))
        for year in sorted(by_year, reverse=True)
    ]


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# --------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class WeekCount:
    """How many reflections one ISO week holds."""

    week_start: date  # a Monday
    entries: int
    words: int


@dataclass(frozen=True)
class Streak:
    """Consecutive days with at least one reflection."""

    days: int
    first: date | None
    last: date | None


@dataclass(frozen=True)
class JournalStats:
    """Entries per week, streaks and words over the journal."""

    entries: int
    words: int
    days_written: int
    first: date | None
    last: date | None
    current_streak: Streak  # consecutive days up to today (or yesterday: today is not over)
    longest_streak: Streak
    weeks: tuple[WeekCount, ...]  # oldest first, ending with this week
    top_tags: tuple[TagCount, ...] = field(default=())
    starred: int = 0
    private: int = 0

    @property
    def average_words(self) -> int:
        return round(self.words / self.entries) if self.entries else 0

    def to_json(self) -> dict[str, Any]:
        def day(d: date | None) -> str | None:
            return d.isoformat() if d else None

        def streak(s: Streak) -> dict[str, Any]:
            return {"days": s.days, "first": day(s.first), "last": day(s.last)}

        return {
            "entries": self.entries,
            "words": self.words,
            "average_words": self.average_words,
            "days_written": self.days_written,
            "first": day(self.first),
            "last": day(self.last),
            "current_streak": streak(self.current_streak),
            "longest_streak": streak(self.longest_streak),
            "starred": self.starred,
            "private": self.private,
            "weeks": [{"week_start": w.week_start.isoformat(), "entries": w.entries,
                       "words": w.words} for w in self.weeks],
            "top_tags": [{"tag": t.tag, "count": t.count} for t in self.top_tags],
        }


def journal_stats(reflections: Sequence[Reflection], today: date, *,
                  zone: tzinfo | None = None, weeks: int = DEFAULT_WEEKS) -> JournalStats:
    """Counts over *reflections*, with *weeks* weeks of entries ending this week."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise ValueError(f"weeks must be between 1 and {MAX_WEEKS} (got {weeks})")
    days: Counter[date] = Counter()
    words_by_week: Counter[date] = Counter()
    entries_by_week: Counter[date] = Counter()
    total_words = 0
    for r in reflections:
        d = local_date(r.created_at, zone)
        n = word_count(r.text)
        total_words += n
        days[d] += 1
        monday = d - timedelta(days=d.weekday())
        entries_by_week[monday] += 1
        words_by_week[monday] += n
    this_monday = today - timedelta(days=today.weekday())
    week_list = tuple(
        WeekCount(m, entries_by_week[m], words_by_week[m])
        for m in (this_monday - timedelta(weeks=k) for k in range(weeks - 1, -1, -1))
    )
    return JournalStats(
        entries=len(reflections),
        words=total_words,
        days_written=len(days),
        first=min(days) if days else None,
        last=max(days) if days else None,
        current_streak=_current_streak(set(days), today),
        longest_streak=_longest_streak(set(days)),
        weeks=week_list,
        top_tags=tuple(tag_counts(reflections)[:TOP_TAGS]),
        starred=sum(1 for r in reflections if r.starred),
        private=sum(1 for r in reflections if r.private),
    )


def _current_streak(days: set[date], today: date) -> Streak:
    last = today if today in days else today - timedelta(days=1)
    if last not in days:
        return Streak(0, None, None)
    first = last
    while first - timedelta(days=1) in days:
        first -= timedelta(days=1)
    return Streak((last - first).days + 1, first, last)


def _longest_streak(days: set[date]) -> Streak:
    best = Streak(0, None, None)
    for d in sorted(days):
        if d - timedelta(days=1) in days:
            continue  # not the start of a run
        end = d
        while end + timedelta(days=1) in days:
            end += timedelta(days=1)
        length = (end - d).days + 1
        if length > best.days:
            best = Streak(length, d, end)
    return best
