"""Natural dates (node/journal/dates.py) and the journal filter, with a pinned "now"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crdt.journal import Reflection
from node.journal.dates import DateParseError, parse_moment, parse_span
from node.journal.query import journal_filter

PARIS = ZoneInfo("Europe/Paris")
# Wednesday 9 December 2026, 15:30 in Paris (14:30 UTC)
NOW = datetime(2026, 12, 9, 15, 30, tzinfo=PARIS)


def day(text: str) -> date:
    span = parse_span(text, NOW, PARIS)
    assert span.unit == "day", span
    start = span.start.astimezone(PARIS)
    assert (start.hour, start.minute) == (0, 0)
    assert span.end.astimezone(PARIS) - start == timedelta(days=1)
    return start.date()


@pytest.mark.parametrize(("text", "expected"), [
    ("today", date(2026, 12, 9)),
    ("Today", date(2026, 12, 9)),
    ("yesterday", date(2026, 12, 8)),
    ("3 days ago", date(2026, 12, 6)),
    ("a day ago", date(2026, 12, 8)),
    ("2 weeks ago", date(2026, 11, 25)),
    ("two weeks ago", date(2026, 11, 25)),
    ("1 month ago", date(2026, 11, 9)),
    ("a year ago", date(2025, 12, 9)),
    ("last monday", date(2026, 12, 7)),
    ("monday", date(2026, 12, 7)),
    ("last wednesday", date(2026, 12, 2)),  # today is a Wednesday: the one before
    ("wednesday", date(2026, 12, 9)),
    ("last fri", date(2026, 12, 4)),
    ("dec 1", date(2026, 12, 1)),
    ("December 1st", date(2026, 12, 1)),
    ("1 dec", date(2026, 12, 1)),
    ("dec 25", date(2025, 12, 25)),  # the latest 25 December, not one to come
    ("march 3, 2024", date(2024, 3, 3)),
    ("2026-11-01", date(2026, 11, 1)),
])
def test_days(text: str, expected: date) -> None:
    assert day(text) == expected


def test_months_weeks_years() -> None:
    last_week = parse_span("last week", NOW, PARIS)
    assert last_week.unit == "week"
    assert last_week.start.astimezone(PARIS).date() == date(2026, 11, 30)
    assert last_week.end.astimezone(PARIS).date() == date(2026, 12, 7)
    month = parse_span("last month", NOW, PARIS)
    assert (month.start.astimezone(PARIS).date(), month.end.astimezone(PARIS).date()) == (
        date(2026, 11, 1), date(2026, 12, 1))
    assert parse_span("2026-11", NOW, PARIS) == month
    assert parse_span("nov", NOW, PARIS) == month
    assert parse_span("november 2026", NOW, PARIS) == month
    assert parse_span("2025", NOW, PARIS).start == datetime(2025, 1, 1, tzinfo=PARIS)
    # March 2026 runs across the change to summer time: its end is still midnight in Paris
    march = parse_span("march", NOW, PARIS)
    assert march.end.astimezone(PARIS) == datetime(2026, 4, 1, tzinfo=PARIS)


def test_moments() -> None:
    assert parse_moment("now", NOW, PARIS) == NOW
    assert parse_moment("3 hours ago", NOW, PARIS) == NOW - timedelta(hours=3)
    assert parse_moment("yesterday 21:30", NOW, PARIS) == datetime(2026, 12, 8, 21, 30,
                                                                    tzinfo=PARIS)
    assert parse_moment("dec 1 at 9pm", NOW, PARIS) == datetime(2026, 12, 1, 21, tzinfo=PARIS)
    assert parse_moment("9am", NOW, PARIS) == datetime(2026, 12, 9, 9, tzinfo=PARIS)
    assert parse_moment("2026-11-01T21:30+00:00", NOW, PARIS) == datetime(2026, 11, 1, 21, 30,
                                                                           tzinfo=UTC)
    assert parse_moment("2026-11-01 21:30", NOW, PARIS) == datetime(2026, 11, 1, 21, 30,
                                                                     tzinfo=PARIS)
    # a day without a time: its midnight, as an ISO date always was
    assert parse_moment("yesterday", NOW, PARIS) == datetime(2026, 12, 8, tzinfo=PARIS)


@pytest.mark.parametrize("text", [
    "", "yesterday-ish", "someday", "feb 30", "13pm", "25:00", "2026-13", "last fortnight",
    "3 parsecs ago", "99999 days ago",
])
def test_refused_with_a_message(text: str) -> None:
    with pytest.raises(DateParseError) as caught:
        parse_span(text, NOW, PARIS)
    assert str(caught.value)


def test_february_29_without_a_year_is_the_latest_leap_day() -> None:
    assert day("feb 29") == date(2024, 2, 29)


def _r(rid: str, at: datetime, *, tags: tuple[str, ...] = (), starred: bool = False
       ) -> Reflection:
    return Reflection(id=rid, created_at=at.astimezone(UTC), text=rid, tags=tags,
                      starred=starred)


def test_filter_from_to_on_and_newest_n() -> None:
    items = [
        _r("nov30", datetime(2026, 11, 30, 23, 59, tzinfo=PARIS)),
        _r("dec01", datetime(2026, 12, 1, 0, 0, tzinfo=PARIS), tags=("work",)),
        _r("dec07", datetime(2026, 12, 7, 12, 0, tzinfo=PARIS), starred=True),
        _r("dec08", datetime(2026, 12, 8, 23, 59, tzinfo=PARIS), tags=("work",)),
        _r("dec09", datetime(2026, 12, 9, 8, 0, tzinfo=PARIS)),
    ]

    def ids(**kw: object) -> list[str]:
        return [r.id for r in journal_filter(now=NOW, zone=PARIS, **kw).apply(items)]  # type: ignore[arg-type]

    assert ids(from_="dec 1") == ["dec01", "dec07", "dec08", "dec09"]
    assert ids(to="yesterday") == ["nov30", "dec01", "dec07", "dec08"]  # through its end
    assert ids(from_="dec 1", to="last monday") == ["dec01", "dec07"]
    assert ids(on="yesterday") == ["dec08"]
    assert ids(on="last week") == ["nov30", "dec01"]  # Monday 30 November to Sunday
    assert ids(on="this week") == ["dec07", "dec08", "dec09"]
    assert ids(tags=["#Work"]) == ["dec01", "dec08"]
    assert ids(starred=True) == ["dec07"]
    assert ids(limit=2) == ["dec08", "dec09"]
    assert ids(from_="dec 1", limit=1, tags=["work"]) == ["dec08"]
    with pytest.raises(ValueError, match="before"):
        journal_filter(now=NOW, zone=PARIS, from_="today", to="last week")
