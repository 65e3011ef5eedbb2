"""The filter options as command-line arguments, shared by ``mirror list|search|tags``
and the prompt's ``/list`` and ``/search``: ``--from``, ``--to``, ``--on`` (natural
dates), ``--tag``, ``--starred``, ``-n N``. Only argparse: it loads nothing heavy."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from ..errors import UsageError
from .dates import DateParseError
from .query import JournalFilter, journal_filter


def _newest(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def add_filter_args(p: argparse.ArgumentParser, *, newest: bool = True) -> None:
    """``--from``, ``--to``, ``--on``, ``--tag``, ``--starred`` and (with *newest*) ``-n``."""
    p.add_argument("--from", dest="from_", metavar="DATE",
                   help='from this day on, e.g. "2 weeks ago", "last monday", dec 1, 2026-11-01')
    p.add_argument("--to", metavar="DATE", help="up to and with this day, e.g. yesterday")
    p.add_argument("--on", metavar="DATE",
                   help='only this day (or week, month, year): today, "last week", 2026-11')
    p.add_argument("--tag", action="append", metavar="TAG", help="only with this tag "
                   "(repeatable: any of them)")
    p.add_argument("--starred", action="store_true", help="only starred reflections")
    if newest:
        p.add_argument("-n", "--limit", type=_newest, metavar="N", dest="limit",
                       help="only the newest N")


def filter_of(args: argparse.Namespace, *, limit: bool = True,
              now: datetime | None = None) -> JournalFilter:
    """The filter the options of :func:`add_filter_args` ask for; UsageError for a date
    that cannot be read or a range that ends before it starts."""
    try:
        return journal_filter(now=now or datetime.now(UTC), from_=args.from_, to=args.to,
                              on=args.on, tags=args.tag or (), starred=args.starred,
                              limit=getattr(args, "limit", None) if limit else None)
    except (DateParseError, ValueError) as exc:
        raise UsageError(str(exc)) from None
