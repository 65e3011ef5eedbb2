"""Reading a date a person typed (a command's ``--at``, the REPL's ``/evolve DATE``, a
form field), the same way in every front end."""

from __future__ import annotations

from datetime import UTC, datetime

from ..errors import UsageError


def parse_when(text: str) -> datetime:
    """``2026-11-01``, ``2026-11-01 21:30`` or ISO-8601; a time without zone is local time.
    UsageError when it cannot be read or is in the future."""
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"cannot read the date {text!r} (use e.g. 2026-11-01 or 2026-11-01T21:30)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the machine's local zone
    moment = moment.astimezone(UTC)
    if moment > datetime.now(UTC):
        raise UsageError(f"{text!r} is in the future")
    return moment
