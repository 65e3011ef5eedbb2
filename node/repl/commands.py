"""The REPL's views: ``/patterns /tensions /graph /evolve /related /engine /ask /digest
/mood /config /commons``, each the words after the command turned into a call of the
application layer, and its result into text (:mod:`node.views`)."""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable

from ..app import Mirror
from ..app.dates import parse_when
from ..app.insight import DIGEST_PERIODS
from ..app.settings import ENGINE_CHOICES
from ..errors import UsageError
from ..views.commons import render_thread, render_threads
from ..views.engine import (
    render_engine,
    render_evolution,
    render_graph,
    render_patterns,
    render_related,
    render_tensions,
)
from ..views.insight import (
    render_answer,
    render_countries,
    render_country,
    render_digest,
    render_mood,
)

CONFIG_KEYS = ("country",)

# name → (arguments, what it does), in the order of /help
VIEWS: dict[str, tuple[str, str]] = {
    "patterns": ("", "recurring themes and trigger → response loops"),
    "tensions": ("", "tensions over time, a sparkline each"),
    "graph": ("[NODE]", "your identity graph as a tree (or one node)"),
    "evolve": ("[DATE]", "an evolution note since DATE (default: the last 30 days)"),
    "related": ("[ID]", "past reflections related to one (default: the newest)"),
    "engine": ("[offline|local|remote] [--model M] [--api-base URL]", "show or set the engine"),
    "ask": ("QUESTION", "ask your journal (\"when did I last feel calm?\"); answers cite ids"),
    "digest": ("[week|month]", "what the week (or month) held, and a question to sit with"),
    "commons": ("[THREAD]", "read the Commons (cached; refreshed when the server is reachable)"),
    "mood": ("[WEEKS]", "your mood week by week (default: the last 12 weeks)"),
    "config": ("country [CODE|none|--list]", "show or set the country of your crisis lines"),
}


def _words(name: str, rest: str) -> list[str]:
    try:
        return shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"/{name}: {exc}") from None


async def patterns(mirror: Mirror, words: list[str]) -> str:
    return render_patterns(await mirror.patterns(), await mirror.loops())


async def tensions(mirror: Mirror, words: list[str]) -> str:
    return render_tensions(await mirror.tensions())


async def graph(mirror: Mirror, words: list[str]) -> str:
    view = await mirror.graph()
    return render_graph(view, mirror.graph_node(view, " ".join(words)) if words else None)


async def evolve(mirror: Mirror, words: list[str]) -> str:
    since = parse_when(words[0]) if words else None
    return render_evolution((await mirror.evolve(since=since)).evolution)


async def related(mirror: Mirror, words: list[str]) -> str:
    result = await mirror.related(words[0] if words else None)
    return render_related(result.items, result.of)


async def engine(mirror: Mirror, words: list[str]) -> str:
    if not words:
        return render_engine(mirror.config)
    choice, options = words[0], words[1:]
    if choice not in ENGINE_CHOICES:
        raise UsageError(f"/engine takes one of {', '.join(ENGINE_CHOICES)} (got {choice!r})")
    values: dict[str, str] = {}
    while options:
        flag = options.pop(0)
        if flag not in ("--model", "--api-base") or not options:
            raise UsageError("usage: /engine offline|local|remote [--model M] [--api-base URL]")
        values[flag] = options.pop(0)
    new = await mirror.set_engine(choice, model=values.get("--model"),
                                  api_base=values.get("--api-base"))
    return render_engine(new)


async def digest(mirror: Mirror, words: list[str]) -> str:
    if len(words) > 1 or (words and words[0].lstrip("-") not in DIGEST_PERIODS):
        raise UsageError("usage: /digest [week|month]")
    month = bool(words) and words[0].lstrip("-") == "month"
    return render_digest(await mirror.digest("month" if month else "week"))


async def mood(mirror: Mirror, words: list[str]) -> str:
    if len(words) > 1 or (words and not words[0].isdigit()):
        raise UsageError("usage: /mood [WEEKS]")
    weeks = int(words[0]) if words else 12
    return render_mood((await mirror.mood(weeks=weeks)).weeks)


async def config(mirror: Mirror, words: list[str]) -> str:
    if not words:
        return render_country(mirror.config.country)
    if words[0] not in CONFIG_KEYS or len(words) > 2:
        raise UsageError("usage: /config country [CODE|none|--list]")
    if len(words) == 2 and words[1] == "--list":
        return render_countries()
    if len(words) == 2:
        await mirror.set_country(words[1])
    return render_country(mirror.config.country)


async def commons(mirror: Mirror, words: list[str]) -> str:
    view = await mirror.commons_read(words[0] if words else None)
    lines = []
    sync = view.sync
    if sync is not None and sync.offline is not None:
        lines.append(f"(offline: {sync.offline}; showing what is cached on this device)")
    if sync is not None and sync.warning is not None:
        lines.append(f"(could not check for withdrawn or moderated items: {sync.warning}; "
                     "cached copies of them stay until a later sync)")
    if sync is not None and sync.report is not None and sync.report.forgotten:
        lines.append(f"({sync.report.forgotten} withdrawn or moderated item(s) deleted from "
                     "this device's cache)")
    if view.thread is not None:
        lines.append(render_thread(view.thread, list(view.items)))
    else:
        lines.append(render_threads(list(view.items)))
    return "\n".join(lines)


HANDLERS: dict[str, Callable[[Mirror, list[str]], Awaitable[str]]] = {
    "patterns": patterns, "tensions": tensions, "graph": graph, "evolve": evolve,
    "related": related, "engine": engine, "digest": digest, "mood": mood, "config": config,
    "commons": commons,
}


async def run_view(mirror: Mirror, name: str, rest: str) -> str:
    """Run /NAME REST; the text to show."""
    if name == "ask":  # the whole line is the question, quotes and all
        return render_answer(await mirror.ask(rest))
    return await HANDLERS[name](mirror, _words(name, rest))
