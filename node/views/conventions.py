"""The journal conventions as text: search hits with their matches highlighted, tag
counts, on this day, stats, what a filter keeps. Text from the journal is made
:func:`printable` before any colour of ours is put around it, so the colours
survive the terminal filter and nothing else reaches the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from ..journal.query import JournalFilter
from ..journal.search import Hit, match_spans, snippet
from ..journal.stats import JournalStats, YearAgo
from ..journal.tags import TagCount
from ..pager import BOLD, DIM, RESET, display_width, fit, highlight
from ..terminal import printable
from .journal import format_list_line

SNIPPET_INDENT = "    "
SPARK = "▁▂▃▄▅▆▇█"
SPARK_NONE = "·"


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
    """One character a value: · for none, a bar up to █ for the most."""
    top = max(values, default=0)
    return "".join(SPARK_NONE if v <= 0 else SPARK[max(0, round(v / top * len(SPARK)) - 1)]
                   for v in values)


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
