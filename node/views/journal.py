"""Reflections as lines of text: a list line, the whole of one, an arrival."""

from __future__ import annotations

from collections.abc import Iterable

from crdt.journal import Reflection

from ..app import Arrival
from ..pager import display_width, fit


def short_line(text: str, width: int = 72) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


LINE_COLUMNS = 80  # what a listing fits when the terminal does not say


def format_list_line(r: Reflection, width: int = LINE_COLUMNS) -> str:
    """One reflection on one line of at most *width* columns: id, local time, ★ if
    starred, 🔒 if private, the start of its text, its tags."""
    local = r.created_at.astimezone()
    flags = ("★" if r.starred else " ") + ("🔒" if r.private else "  ")
    head = f"{r.id[:8]}  {local:%Y-%m-%d %H:%M} {flags} "
    tags = (" " + " ".join(f"#{t}" for t in r.tags)) if r.tags else ""
    room = width - display_width(head)
    flat = " ".join(r.text.split())
    if tags and display_width(tags) > room // 2:
        tags = fit(tags, room // 2)
    return head + fit(flat, room - display_width(tags)) + tags


def format_reflection(r: Reflection) -> str:
    local = r.created_at.astimezone()
    lines = [f"{r.id}  {local:%A %Y-%m-%d %H:%M}" + ("  ★ starred" if r.starred else "")
             + ("  (private)" if r.private else "")]
    if r.tags:
        lines.append("tags: " + " ".join(f"#{t}" for t in r.tags))
    if r.edited_at:
        lines.append(f"edited {r.edited_at.astimezone():%Y-%m-%d %H:%M}")
    lines += ["", r.text]
    if r.mirrorback:
        lines += ["", f"— mirrorback ({r.mirrorback.engine})", r.mirrorback.text]
    return "\n".join(lines)


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def arrival_line(arrival: Arrival, reflections: Iterable[Reflection]) -> str:
    items = list(reflections)
    lines = items[-1].text.strip().splitlines()
    newest = short_line(lines[0] if lines else "")
    if len(items) == 1:
        return f"1 reflection arrived from {arrival.source}: {newest}"
    return f"{plural(len(items), 'reflection')} arrived from {arrival.source}; newest: {newest}"
