"""Natural dates: what a person types after ``--at``, ``--from``, ``--to``, ``--on``.

:func:`parse_span` reads one date and returns the stretch of time it names, as
``[start, end)`` in UTC:

* a day — ``today``, ``yesterday``, ``3 days ago``, ``2 weeks ago``, ``last monday``,
  ``monday`` (the latest one, today included), ``dec 1``, ``1 december 2025``,
  ``2026-11-01``;
* a week, month or year — ``this week``, ``last week``, ``last month``, ``dec``,
  ``december 2025``, ``2026-11``, ``2026``;
* a moment — ``now``, ``3 hours ago``, ``2026-11-01T21:30``, or any day with a
  time: ``yesterday 21:30``, ``dec 1 at 9pm``.

A month and day without a year is the latest such day that is not after today
(in January, ``dec 1`` is last December's). Days start at midnight in *zone*
(the machine's own zone when ``None``). ``--from X`` takes X's start,
``--to X`` runs to X's end, ``--on X`` is X, ``--at X`` is X's start.

Pure: the caller passes *now*, so tests pin it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Literal

Unit = Literal["moment", "day", "week", "month", "year"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_ABBR = {"mon": 0, "tue": 1, "tues": 1, "wed": 2, "thu": 3, "thur": 3, "thurs": 3,
                 "fri": 4, "sat": 5, "sun": 6}
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
_MONTH_ABBR = {"sept": 9, **{m[:3]: i + 1 for i, m in enumerate(MONTHS)}}
_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                 "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
MAX_AGO = 10_000  # "10001 days ago" is a typo, not a date

EXAMPLES = ('today, yesterday, "3 days ago", "2 weeks ago", "last monday", "dec 1", '
            "2026-11-01, 2026-11-01T21:30")


class DateParseError(ValueError):
    """The text is not a date this module reads; the message says what would be."""


@dataclass(frozen=True)
class DateSpan:
    """``[start, end)`` in UTC, and what the text named (a moment, a day …)."""

    start: datetime
    end: datetime
    unit: Unit

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, datetime) and self.start <= moment < self.end


_TIME_RE = re.compile(
    r"(?:^|\s+)(?:at\s+)?(?P<h>\d{1,2})(?::(?P<m>\d{2}))?\s*(?P<ampm>am|pm)$"
    r"|(?:^|\s+)(?:at\s+)?(?P<h24>\d{1,2}):(?P<m24>\d{2})$"
)
_AGO_RE = re.compile(
    r"^(?P<n>\d+|" + "|".join(_NUMBER_WORDS) + r")\s+"
    r"(?P<unit>minute|min|hour|day|week|month|year)s?\s+ago$"
)
_RELATIVE_PERIOD_RE = re.compile(r"^(?P<which>this|last)\s+(?P<unit>week|month|year)$")
_MONTH_NAME = r"(?P<month>[a-z]{3,9})\.?"
_DAY_NUMBER = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s+(?P<year>\d{4}))?"
_MONTH_DAY_RE = re.compile(rf"^{_MONTH_NAME}\s+{_DAY_NUMBER}{_YEAR}$")
_DAY_MONTH_RE = re.compile(rf"^{_DAY_NUMBER}\s+(?:of\s+)?{_MONTH_NAME}{_YEAR}$")
_MONTH_RE = re.compile(rf"^{_MONTH_NAME}{_YEAR}$")
_ISO_MONTH_RE = re.compile(r"^(?P<year>\d{4})-(?P<month>\d{2})$")
_ISO_YEAR_RE = re.compile(r"^(?P<year>\d{4})$")


def parse_span(text: str, now: datetime, zone: tzinfo | None = None) -> DateSpan:
    """The stretch of time *text* names (module docstring); :class:`DateParseError`
    when it names none. *now* must carry a time zone."""
    if now.tzinfo is None:
        raise ValueError("now must carry a time zone")
    raw = " ".join(text.strip().split())
    if not raw:
        raise DateParseError("no date given")
    iso = _iso(raw, zone)
    if iso is not None:
        return iso
    words = raw.lower().rstrip(".")
    clock, words = _split_time(words)
    span = _words(words, now, zone)
    if span is None:
        raise DateParseError(f"cannot read the date {text!r} (use e.g. {EXAMPLES})")
    if clock is None:
        return span
    if span.unit != "day":
        raise DateParseError(f"{text!r}: a time of day goes with a day, e.g. 'yesterday 21:30'")
    return _moment(_local(span.start, zone).date(), clock, zone)


def parse_moment(text: str, now: datetime, zone: tzinfo | None = None) -> datetime:
    """The moment *text* names: its time if it gives one, else the start of its day."""
    return parse_span(text, now, zone).start


def local_day_start(day: date, zone: tzinfo | None = None) -> datetime:
    """Midnight of *day* in *zone* (the machine's zone when ``None``), in UTC."""
    return _at(day, time(), zone)


# --------------------------------------------------------------------------- internals


def _at(day: date, clock: time, zone: tzinfo | None) -> datetime:
    naive = datetime.combine(day, clock)
    # A naive datetime's astimezone() applies the machine's own rules, summer time included.
    local = naive.astimezone() if zone is None else naive.replace(tzinfo=zone)
    return local.astimezone(UTC)


def _local(moment: datetime, zone: tzinfo | None) -> datetime:
    return moment.astimezone() if zone is None else moment.astimezone(zone)


def _day(day: date, zone: tzinfo | None) -> DateSpan:
    return DateSpan(_at(day, time(), zone), _at(day + timedelta(days=1), time(), zone), "day")


def _moment(day: date, clock: time, zone: tzinfo | None) -> DateSpan:
    start = _at(day, clock, zone)
    return DateSpan(start, start + timedelta(microseconds=1), "moment")


def _exact(moment: datetime) -> DateSpan:
    start = moment.astimezone(UTC)
    return DateSpan(start, start + timedelta(microseconds=1), "moment")


def _week(day: date, zone: tzinfo | None) -> DateSpan:
    monday = day - timedelta(days=day.weekday())
    return DateSpan(_at(monday, time(), zone), _at(monday + timedelta(days=7), time(), zone),
                    "week")


def _month(year: int, month: int, zone: tzinfo | None) -> DateSpan:
    after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return DateSpan(_at(date(year, month, 1), time(), zone), _at(after, time(), zone), "month")


def _year(year: int, zone: tzinfo | None) -> DateSpan:
    return DateSpan(_at(date(year, 1, 1), time(), zone), _at(date(year + 1, 1, 1), time(), zone),
                "year")


def _iso(raw: str, zone: tzinfo | None) -> DateSpan | None:
    if m := _ISO_YEAR_RE.match(raw):
        return _year(_checked_year(int(m["year"])), zone)
    if m := _ISO_MONTH_RE.match(raw):
        month = int(m["month"])
        if not 1 <= month <= 12:
            raise DateParseError(f"{raw!r}: there is no month {month}")
        return _month(_checked_year(int(m["year"])), month, zone)
    if not re.match(r"^\d{4}-\d{2}-\d{2}", raw):
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise DateParseError(f"cannot read the date {raw!r} (use e.g. 2026-11-01 or "
                             "2026-11-01T21:30)") from None
    if len(raw) == 10:
        return _day(moment.date(), zone)
    if moment.tzinfo is not None:
        return _exact(moment)
    return _moment(moment.date(), moment.time(), zone)


def _checked_year(year: int) -> int:
    if not 1 <= year <= 9998:
        raise DateParseError(f"the year {year} is out of range")
    return year


def _split_time(words: str) -> tuple[time | None, str]:
    m = _TIME_RE.search(words)
    if m is None:
        return None, words
    rest = words[: m.start()].strip()
    if m["h24"] is not None:
        hour, minute = int(m["h24"]), int(m["m24"])
    else:
        hour, minute = int(m["h"]), int(m["m"] or 0)
        if not 1 <= hour <= 12:
            raise DateParseError(f"{words!r}: {hour}{m['ampm']} is not a time")
        hour = hour % 12 + (12 if m["ampm"] == "pm" else 0)
    if hour > 23 or minute > 59:
        raise DateParseError(f"{words!r}: {hour:02d}:{minute:02d} is not a time")
    return time(hour, minute), rest or "today"


def _words(words: str, now: datetime, zone: tzinfo | None) -> DateSpan | None:
    today = _local(now, zone).date()
    if words == "now":
        return _exact(now)
    if words == "today":
        return _day(today, zone)
    if words == "yesterday":
        return _day(today - timedelta(days=1), zone)
    if words == "tomorrow":
        return _day(today + timedelta(days=1), zone)
    if m := _AGO_RE.match(words):
        return _ago(m["n"], m["unit"], now, today, zone)
    if m := _RELATIVE_PERIOD_RE.match(words):
        return _relative_period(m["which"], m["unit"], today, zone)
    weekday = _weekday(words)
    if weekday is not None:
        last, index = weekday
        back = (today.weekday() - index) % 7
        if last and back == 0:
            back = 7
        return _day(today - timedelta(days=back), zone)
    return _calendar(words, today, zone)


def _ago(count: str, unit: str, now: datetime, today: date, zone: tzinfo | None) -> DateSpan:
    n = _NUMBER_WORDS.get(count) or int(count)
    if n > MAX_AGO:
        raise DateParseError(f"{count} {unit}s ago is too far back")
    if unit in ("minute", "min"):
        return _exact(now - timedelta(minutes=n))
    if unit == "hour":
        return _exact(now - timedelta(hours=n))
    if unit == "day":
        return _day(today - timedelta(days=n), zone)
    if unit == "week":
        return _day(today - timedelta(weeks=n), zone)
    months = n * (12 if unit == "year" else 1)
    return _day(_months_back(today, months), zone)


def _months_back(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    year, month = divmod(index, 12)
    _checked_year(year)
    return date(year, month + 1, min(day.day, _days_in(year, month + 1)))


def _days_in(year: int, month: int) -> int:
    after = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return (after - date(year, month, 1)).days


def _relative_period(which: str, unit: str, today: date, zone: tzinfo | None) -> DateSpan:
    if unit == "week":
        return _week(today - timedelta(weeks=1 if which == "last" else 0), zone)
    if unit == "month":
        first = _months_back(today.replace(day=1), 1 if which == "last" else 0)
        return _month(first.year, first.month, zone)
    return _year(today.year - (1 if which == "last" else 0), zone)


def _weekday(words: str) -> tuple[bool, int] | None:
    last = words.startswith("last ")
    name = words[5:] if last else words
    if name in WEEKDAYS:
        return last, WEEKDAYS.index(name)
    if name in _WEEKDAY_ABBR:
        return last, _WEEKDAY_ABBR[name]
    return None


def _month_number(name: str) -> int | None:
    if name in MONTHS:
        return MONTHS.index(name) + 1
    return _MONTH_ABBR.get(name)


def _calendar(words: str, today: date, zone: tzinfo | None) -> DateSpan | None:
    m = _MONTH_DAY_RE.match(words) or _DAY_MONTH_RE.match(words)
    if m is not None:
        month = _month_number(m["month"])
        if month is None:
            return None
        day = int(m["day"])
        if m["year"]:
            return _day(_valid_date(_checked_year(int(m["year"])), month, day, words), zone)
        year = today.year
        if (month, day) > (today.month, today.day):
            year -= 1  # the latest such day, not one to come
        if month == 2 and day == 29:
            while _days_in(year, 2) < 29:
                year -= 1
        return _day(_valid_date(year, month, day, words), zone)
    m = _MONTH_RE.match(words)
    if m is not None:
        month = _month_number(m["month"])
        if month is None:
            return None
        if m["year"]:
            return _month(_checked_year(int(m["year"])), month, zone)
        year = today.year - (1 if month > today.month else 0)
        return _month(year, month, zone)
    return None


def _valid_date(year: int, month: int, day: int, words: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise DateParseError(f"{words!r} is not a day of the calendar") from None
