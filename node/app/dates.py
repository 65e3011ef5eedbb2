"""Reading a date a person typed (a command's ``--at``, the REPL's ``/evolve DATE``, a
form field), the same way in every front end: ISO dates and natural words
("yesterday", "3 days ago", "last monday 21:30", "dec 1"; node/journal/dates.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from ..errors import UsageError
from ..journal.dates import DateParseError, parse_moment, parse_span


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """The moment *text* names: ``2026-11-01``, ``2026-11-01 21:30``, ISO-8601, or
    natural words. A day without a time is its midnight; a time without a zone is
    local time. UsageError when it cannot be read or is in the future."""
    now = now or datetime.now(UTC)
    try:
        moment = parse_moment(text, now)
    except DateParseError as exc:
        raise UsageError(str(exc)) from None
    if moment > now:
        raise UsageError(f"{text!r} is in the future")
    return moment


def parse_until(text: str, *, now: datetime | None = None) -> datetime:
    """The end of what *text* names: ``--until 2026-11-01`` or ``--until yesterday``
    include that whole day, ``--until "yesterday 21:30"`` runs to that moment."""
    try:
        return parse_span(text, now or datetime.now(UTC)).end
    except DateParseError as exc:
        raise UsageError(str(exc)) from None
