"""``mirror mood`` (a weekly mood timeline) and ``mirror config`` (the country whose crisis
lines a crisis reply names).

The timeline reads the engine index (one valence per reflection, learned with
it), local scope, private reflections included: it is this device's view and
nothing here writes to a document that can sync. The country is a key of
``config.json``, never synced.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from ..app import Mirror
from ..app.dates import parse_when
from ..engine.mood import MoodWeek, mood_sparkline
from ..errors import UsageError
from ..views.insight import render_countries, render_country, render_mood
from .options import AddCommand

CONFIG_KEYS = ("country",)


def mood_json(weeks: Sequence[MoodWeek]) -> dict[str, Any]:
    return {
        "sparkline": mood_sparkline(weeks),
        "weeks": [{**asdict(w), "start": w.start.isoformat(), "feelings": list(w.feelings)}
                  for w in weeks],
    }


async def cmd_mood(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    until = parse_when(args.until) if args.until else None
    weeks = (await mirror.mood(weeks=args.weeks, until=until)).weeks
    if args.json:
        json.dump(mood_json(weeks), out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        print(render_mood(weeks), file=out)
    return 0


async def cmd_config(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    if args.key is None:
        if args.list:
            raise UsageError("--list goes with a key: mirror config country --list")
        print(render_country(mirror.config.country), file=out)
        return 0
    if args.key not in CONFIG_KEYS:
        raise UsageError(f"unknown setting {args.key!r}; settings: {', '.join(CONFIG_KEYS)}")
    if args.list:
        print(render_countries(), file=out)
        return 0
    if args.value is not None:
        await mirror.set_country(args.value)
    print(render_country(mirror.config.country), file=out)
    return 0


def add_commands(add: AddCommand) -> None:
    p = add("mood", cmd_mood, "your mood week by week: a sparkline of how your reflections feel")
    p.add_argument("--weeks", type=int, default=12, metavar="N", help="how many weeks (default 12)")
    p.add_argument("--until", metavar="DATE", help="the last week shown (default: the newest "
                   "reflection's)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("config", cmd_config, "show or change settings: country (whose crisis lines a "
            "crisis reply names)")
    p.add_argument("key", nargs="?", help="the setting: country")
    p.add_argument("value", nargs="?", help="the new value: a country code or name "
                   "(e.g. DE, Germany), or 'none' for the international directory")
    p.add_argument("--list", action="store_true", help="list the countries in the table")
