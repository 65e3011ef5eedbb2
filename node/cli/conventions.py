"""Journal commands people know from jrnl and Day One: ``mirror search``, ``tags``,
``star``/``unstar``, ``onthisday``, ``stats``, and the date filters of ``list``.

The work is done by the pure operations of :mod:`node.journal`; this module
reads arguments and renders text. The same renderers serve the REPL's
``/search``, ``/tags``, ``/star``, ``/onthisday`` and ``/stats``
(:func:`repl_command`). Text from the journal is made :func:`printable` before
any colour of ours is added around it, so the colours survive and nothing else
reaches the terminal.
"""

from __future__ import annotations

import argparse
import json
import shlex
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, NoReturn, TextIO

from crdt.journal import Reflection

from ..errors import UsageError
from ..journal.query import JournalFilter
from ..pager import BOLD, COLOUR_CHOICES, DIM, RESET, display_width, fit, highlight, page
from ..terminal import printable

if TYPE_CHECKING:
    from ..app import Mirror
    from ..core import MirrorCore
    from ..journal.search import Hit
    from ..journal.stats import JournalStats, YearAgo
    from ..journal.tags import TagCount

AddCommand = Callable[..., argparse.ArgumentParser]

SNIPPET_INDENT = "    "
SPARK = " ▁▂▃▄▅▆▇█"


# --------------------------------------------------------------------------- arguments


def add_filter_args(p: argparse.ArgumentParser, *, newest: bool = True) -> None:
    """``--from``, ``--to``, ``--on``, ``--tag``, ``--starred`` and ``-n``."""
    p.add_argument("--from", dest="from_", metavar="DATE",
                   help='from this day on, e.g. "2 weeks ago", "last monday", dec 1, 2026-11-01')
    p.add_argument("--to", metavar="DATE", help="up to and with this day, e.g. yesterday")
    p.add_argument("--on", metavar="DATE",
                   help='only this day (or week, month, year): today, "last week", 2026-11')
    p.add_argument("--tag", action="append", metavar="TAG", help="only with this tag "
                   "(repeatable: any of them)")
    p.add_argument("--starred", action="store_true", help="only starred reflections")
    if newest:
        p.add_argument("-n", "--limit", type=_positive_int, metavar="N", dest="limit",
                       help="only the newest N")


def _positive_int(text: str) -> int:
    from .main import positive_int

    return positive_int(text)


def filter_of(args: argparse.Namespace, *, limit: bool = True) -> JournalFilter:
    from ..app import Mirror

    return Mirror.journal_filter(from_=args.from_, to=args.to, on=args.on,
                                 tags=args.tag or (), starred=args.starred,
                                 limit=args.limit if limit else None)


def describe_filter(f: JournalFilter) -> str:
    """What a filter keeps, in words ("tagged #work, starred, from 2026-12-01")."""
    parts = []
    if f.tags:
        parts.append("tagged " + " or ".join(f"#{t}" for t in f.tags))
    if f.starred:
        parts.append("starred")
    if f.start is not None:
        parts.append(f"from {f.start.astimezone():%Y-%m-%d %H:%M}")
    if f.end is not None:
        parts.append(f"before {f.end.astimezone():%Y-%m-%d %H:%M}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- rendering


def _tags_text(tags: Sequence[str], matched: Sequence[str], colour: bool) -> str:
    return " ".join(
        f"{BOLD}#{printable(t)}{RESET}" if colour and t in matched else f"#{printable(t)}"
        for t in tags
    )


def render_search(hits: Sequence[Hit], query: str, *, colour: bool,
                  width: int = 80) -> str:
    """Each hit as a header line (id, date, ★, 🔒, tags) and a snippet of its text
    around the first match, matches highlighted when *colour*."""
    from ..journal.search import match_spans, snippet

    lines: list[str] = []
    for hit in hits:
        r = hit.reflection
        local = r.created_at.astimezone()
        flags = ("★" if r.starred else "") + ("🔒" if r.private else "")
        head = f"{r.id[:8]}  {local:%Y-%m-%d %H:%M}" + (f" {flags}" if flags else "")
        plain = _tags_text(r.tags, (), colour=False)
        if plain:
            shown = fit(plain, max(10, width - display_width(head) - 2))
            if colour and shown == plain:
                shown = _tags_text(r.tags, hit.matched_tags, colour=True)
            head += "  " + shown
        if colour:
            head = f"{DIM}{head[:8]}{RESET}{head[8:]}"
        clean = printable(r.text)
        text, spans = snippet(clean, match_spans(clean, query), width - len(SNIPPET_INDENT))
        text = fit(text, width - len(SNIPPET_INDENT))
        spans = tuple((a, b) for a, b in spans if b <= len(text))
        lines += [head, SNIPPET_INDENT + highlight(text, spans, colour)]
    return "\n".join(lines)


def render_tags(counts: Sequence[TagCount]) -> str:
    if not counts:
        return "No tags yet. Write #tags in a reflection, or: mirror reflect --tag TAG …"
    width = max(len(str(c.count)) for c in counts)
    return "\n".join(f"{str(c.count).rjust(width)}  #{printable(c.tag)}" for c in counts)


def render_on_this_day(years: Sequence[YearAgo], today: date, width: int = 80) -> str:
    from .main import format_list_line

    if not years:
        return f"Nothing written on {today:%d %B} in earlier years."
    lines: list[str] = []
    for group in years:
        ago = "1 year ago" if group.years == 1 else f"{group.years} years ago"
        day = group.reflections[0].created_at.astimezone()
        lines.append(f"{ago}, {day:%A %d %B %Y}")
        lines += [printable(format_list_line(r, width)) for r in group.reflections]
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def sparkline(values: Sequence[int]) -> str:
    top = max(values, default=0)
    if top == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[0] if v == 0 else SPARK[max(1, round(v / top * 8))] for v in values)


def render_stats(stats: JournalStats) -> str:
    def day(d: date | None) -> str:
        return d.isoformat() if d else "-"

    cur, best = stats.current_streak, stats.longest_streak
    lines = [
        f"entries        {stats.entries} ({stats.starred} starred, {stats.private} private)",
        f"words          {stats.words} (about {stats.average_words} an entry)",
        f"days written   {stats.days_written}, from {day(stats.first)} to {day(stats.last)}",
        f"streak         {cur.days} day{'' if cur.days == 1 else 's'} now"
        + (f" (since {day(cur.first)})" if cur.days else ""),
        f"longest        {best.days} day{'' if best.days == 1 else 's'}"
        + (f" ({day(best.first)} to {day(best.last)})" if best.days else ""),
    ]
    if stats.top_tags:
        lines.append("tags           " + ", ".join(f"#{printable(t.tag)} {t.count}"
                                                   for t in stats.top_tags))
    weeks = stats.weeks
    lines += [
        "",
        f"entries per week, {len(weeks)} weeks to the week of {weeks[-1].week_start:%d %b}:",
        f"  {sparkline([w.entries for w in weeks])}  "
        f"(most: {max(w.entries for w in weeks)}, this week: {weeks[-1].entries})",
    ]
    return "\n".join(lines)


def reflection_json(r: Reflection) -> dict[str, object]:
    from crdt.export import reflection_to_json

    return reflection_to_json(r)


def _dump(value: object, out: TextIO) -> None:
    json.dump(value, out, ensure_ascii=False, indent=1)
    out.write("\n")


def _colour_of(args: argparse.Namespace, out: TextIO) -> bool:
    from ..pager import use_colour

    return use_colour(out, choice=getattr(args, "color", "auto"))


def _width(out: TextIO) -> int:
    from ..pager import terminal_size

    return terminal_size(out)[0]


# --------------------------------------------------------------------------- operations


def _app(core: MirrorCore) -> Mirror:
    from ..app import Mirror

    return Mirror(core)


def _day_of(text: str | None) -> date:
    if not text:
        return datetime.now().date()
    from .main import parse_when

    return parse_when(text).astimezone().date()


# --------------------------------------------------------------------------- commands


async def cmd_search(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    query = " ".join(args.query)
    if not query.strip():
        raise UsageError('what to search for? mirror search WORDS (or #tag)')
    f = filter_of(args)
    hits = await _app(core).search_ranked(query, within=f)
    if args.json:
        _dump([{"score": h.score, "matches": [list(m) for m in h.matches],
                "reflection": reflection_json(h.reflection)} for h in hits], out)
        return 0 if hits else 1
    if not hits:
        within = describe_filter(f)
        print(f"Nothing found for {query!r}" + (f" ({within})" if within else ""), file=out)
        return 1
    page(render_search(hits, query, colour=_colour_of(args, out), width=_width(out)), out)
    return 0


async def cmd_tags(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    counts = await _app(core).tags(within=filter_of(args, limit=False))
    if args.json:
        _dump([{"tag": c.tag, "count": c.count} for c in counts], out)
    else:
        page(render_tags(counts), out)
    return 0


async def cmd_star(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    r = await _app(core).star(args.id, args.star)
    print(f"{'starred' if r.starred else 'unstarred'} {r.id}", file=out)
    return 0


async def cmd_onthisday(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    today = _day_of(args.date)
    years = await _app(core).on_this_day(today)
    if args.json:
        _dump({"date": today.isoformat(), "years": [
            {"years_ago": y.years, "reflections": [reflection_json(r) for r in y.reflections]}
            for y in years]}, out)
    else:
        page(render_on_this_day(years, today, _width(out)), out)
    return 0


async def cmd_stats(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    stats = await _app(core).journal_stats(weeks=args.weeks)
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
    p.set_defaults(star=True)
    p = add("unstar", cmd_star, "take the star off a reflection")
    p.add_argument("id", help="the id, or a unique prefix")
    p.set_defaults(star=False)
    p = add("onthisday", cmd_onthisday, "what you wrote on this day in earlier years")
    p.add_argument("--date", metavar="DATE", help="another day than today, e.g. dec 1")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("stats", cmd_stats, "entries per week, streaks of days, words")
    p.add_argument("--weeks", type=_positive_int, default=12, metavar="N",
                   help="how many weeks of entries (default 12)")
    p.add_argument("--json", action="store_true", help="print JSON")


# --------------------------------------------------------------------------- the REPL


REPL_COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("WORDS [--from D] [--to D]", "full-text search, best match first"),
    "tags": ("", "every tag and how many reflections carry it"),
    "star": ("ID", "star a reflection (/list --starred shows them)"),
    "unstar": ("ID", "take the star off a reflection"),
    "onthisday": ("", "what you wrote on this day in earlier years"),
    "stats": ("", "entries per week, streaks, words"),
}


class _ReplParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def repl_parser(name: str) -> argparse.ArgumentParser:
    """The arguments of /NAME, parsed like the command's, errors as one line."""
    p = _ReplParser(prog=f"/{name}", add_help=False)
    if name in ("search", "list"):
        p.add_argument("words", nargs="*")
        add_filter_args(p)
    return p


def parse_repl_args(name: str, rest: str) -> argparse.Namespace:
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"/{name}: {exc}") from None
    return repl_parser(name).parse_args(words)


async def repl_command(core: MirrorCore, name: str, rest: str, *, colour: bool = False,
                       width: int = 80) -> str:
    """Run /NAME REST for the REPL; returns the text to show (already printable,
    with colour only if *colour*)."""
    app = _app(core)
    if name == "search":
        args = parse_repl_args(name, rest)
        query = " ".join(args.words)
        if not query.strip():
            raise UsageError("/search needs words to find, e.g. /search tired #work")
        hits = await app.search_ranked(query, within=filter_of(args))
        if not hits:
            return f"Nothing found for {printable(query)!r}"
        return render_search(hits, query, colour=colour, width=width)
    if name == "tags":
        return render_tags(await app.tags())
    if name in ("star", "unstar"):
        if not rest:
            raise UsageError(f"/{name} needs an id, e.g. /{name} 1a2b")
        r = await app.star(rest, name == "star")
        return f"{'starred' if r.starred else 'unstarred'} {r.id[:8]}"
    if name == "onthisday":
        today = datetime.now().date()
        return render_on_this_day(await app.on_this_day(today), today, width)
    if name == "stats":
        return render_stats(await app.journal_stats())
    raise UsageError(f"unknown command /{name}")
