"""The REPL's journal commands: ``/search /tags /star /unstar /onthisday /stats``, and
the arguments ``/list`` shares with them (``--from``, ``--to``, ``--on``, ``--tag``,
``--starred``, ``-n``), each a call of the application layer and its text."""

from __future__ import annotations

import argparse
import shlex
from datetime import datetime
from typing import NoReturn

from ..app import Mirror
from ..errors import UsageError
from ..journal.arguments import add_filter_args, filter_of
from ..terminal import printable
from ..views.conventions import render_on_this_day, render_search, render_stats, render_tags

JOURNAL_COMMANDS: dict[str, tuple[str, str]] = {
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


async def run_journal_command(mirror: Mirror, name: str, rest: str, *, colour: bool = False,
                              width: int = 80) -> str:
    """Run /NAME REST; the text to show (already printable, with colour only if
    *colour*)."""
    if name == "search":
        args = parse_repl_args(name, rest)
        query = " ".join(args.words)
        if not query.strip():
            raise UsageError("/search needs words to find, e.g. /search tired #work")
        hits = await mirror.search_ranked(query, within=filter_of(args))
        if not hits:
            return f"Nothing found for {printable(query)!r}"
        return render_search(hits, query, colour=colour, width=width)
    if name == "tags":
        return render_tags(await mirror.tags())
    if name in ("star", "unstar"):
        if not rest:
            raise UsageError(f"/{name} needs an id, e.g. /{name} 1a2b")
        r = await mirror.star(rest, name == "star")
        return f"{'starred' if r.starred else 'unstarred'} {r.id[:8]}"
    if name == "onthisday":
        today = datetime.now().date()
        return render_on_this_day(await mirror.on_this_day(today), today, width)
    if name == "stats":
        return render_stats(await mirror.journal_stats())
    raise UsageError(f"unknown command /{name}")
