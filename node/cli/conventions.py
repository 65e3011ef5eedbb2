"""Journal commands people know from jrnl and Day One: ``mirror search``, ``tags``,
``star``/``unstar``, ``onthisday``, ``stats``, and the date filters that ``list``
shares (:func:`add_filter_args`). Each is a call of the application layer
(:class:`node.app.Mirror`) and the text of :mod:`node.views.conventions`.
"""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from typing import TextIO

from ..app import Mirror
from ..app.dates import parse_when
from ..errors import UsageError
from ..journal.arguments import add_filter_args, filter_of
from ..pager import COLOUR_CHOICES, page, terminal_size, use_colour
from ..views.conventions import (
    describe_filter,
    render_on_this_day,
    render_search,
    render_stats,
    render_tags,
)
from .journal import reflection_json
from .options import AddCommand, positive_int


def _dump(value: object, out: TextIO) -> None:
    json.dump(value, out, ensure_ascii=False, indent=1)
    out.write("\n")


def _day_of(text: str | None) -> date:
    return parse_when(text).astimezone().date() if text else datetime.now().date()


async def cmd_search(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    query = " ".join(args.query)
    if not query.strip():
        raise UsageError("what to search for? mirror search WORDS (or '#tag')")
    f = filter_of(args)
    hits = await mirror.search_ranked(query, within=f)
    if args.json:
        _dump([{"score": h.score, "matches": [list(m) for m in h.matches],
                "reflection": reflection_json(h.reflection)} for h in hits], out)
        return 0 if hits else 1
    if not hits:
        within = describe_filter(f)
        print(f"Nothing found for {query!r}" + (f" ({within})" if within else ""), file=out)
        return 1
    colour = use_colour(out, choice=args.color)
    page(render_search(hits, query, colour=colour, width=terminal_size(out)[0]), out)
    return 0


async def cmd_tags(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    counts = await mirror.tags(within=filter_of(args, limit=False))
    if args.json:
        _dump([{"tag": c.tag, "count": c.count} for c in counts], out)
    else:
        page(render_tags(counts), out)
    return 0


async def cmd_star(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    r = await mirror.star(args.id, True)
    print(f"starred {r.id}", file=out)
    return 0


async def cmd_unstar(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    r = await mirror.star(args.id, False)
    print(f"unstarred {r.id}", file=out)
    return 0


async def cmd_onthisday(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    today = _day_of(args.date)
    years = await mirror.on_this_day(today)
    if args.json:
        _dump({"date": today.isoformat(), "years": [
            {"years_ago": y.years, "reflections": [reflection_json(r) for r in y.reflections]}
            for y in years]}, out)
    else:
        page(render_on_this_day(years, today, terminal_size(out)[0]), out)
    return 0


async def cmd_stats(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    stats = await mirror.journal_stats(weeks=args.weeks)
    if args.json:
        _dump(stats.to_json(), out)
    else:
        print(render_stats(stats), file=out)
    return 0


def add_commands(add: AddCommand) -> None:
    p = add("search", cmd_search, "full-text search of your reflections and their tags, best "
            "match first (exit status 1 when nothing is found)")
    p.add_argument("query", nargs="*", help="words to find; #tag finds a tag")
    add_filter_args(p)
    p.add_argument("--color", choices=COLOUR_CHOICES, default="auto",
                   help="highlight matches (default: on a terminal, unless NO_COLOR is set)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("tags", cmd_tags, "every tag and how many reflections carry it")
    add_filter_args(p, newest=False)
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("star", cmd_star, "star a reflection (list --starred shows the starred ones)")
    p.add_argument("id", help="the id, or a unique prefix")
    p = add("unstar", cmd_unstar, "take the star off a reflection")
    p.add_argument("id", help="the id, or a unique prefix")
    p = add("onthisday", cmd_onthisday, "what you wrote on this day in earlier years")
    p.add_argument("--date", metavar="DATE", help="another day than today, e.g. dec 1")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("stats", cmd_stats, "entries per week, streaks of days, words")
    p.add_argument("--weeks", type=positive_int, default=12, metavar="N",
                   help="how many weeks of entries (default 12)")
    p.add_argument("--json", action="store_true", help="print JSON")
