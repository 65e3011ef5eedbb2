"""``mirror mood`` (a weekly mood timeline) and ``mirror config`` (the country whose crisis
lines a crisis reply names), and the REPL's ``/mood`` and ``/config``.

Contributed to the ``mirror`` parser through ``cli.COMMAND_MODULES``. The
timeline reads the engine index (one valence per reflection, learned with it),
local scope, private reflections included: it is this device's view and
nothing here writes to a document that can sync. The country is a key of
``config.json``, never synced.
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict
from datetime import datetime
from typing import Any, TextIO

import trio

from ..core import MirrorCore
from ..errors import UsageError
from .main import AddCommand, parse_when

COUNTRY_NONE_WORDS = frozenset({"none", "international", "clear", "-", "unset"})
CONFIG_KEYS = ("country",)


# --------------------------------------------------------------------------- mood


async def mood_points(core: MirrorCore) -> list[Any]:
    """One point per reflection still in the journal; valence computed now for those
    learned before valence was recorded."""
    from ..engine.mood import MoodPoint, valence_of

    lexicon_positive = _positive_families()
    points = []
    missing: list[Any] = []
    for x in await core.understanding.extractions():
        if x.valence is None:
            missing.append(x)
            continue
        points.append(MoodPoint(x.created_at, x.valence, x.risk, _feelings(x, lexicon_positive)))
    if missing:
        texts = {r.id: r.text for r in await core.journal.all()}
        for x in missing:
            v = valence_of(texts.get(x.rid, ""))
            points.append(MoodPoint(x.created_at, v.score, v.risk, _feelings(x, lexicon_positive)))
    return points


def _positive_families() -> frozenset[str]:
    from ..engine.lexicon import lexicon

    return lexicon().positive_families


def _feelings(x: Any, positive: frozenset[str]) -> tuple[str, ...]:
    return tuple(i.key for i in x.items
                 if i.kind == "emotion" and not (x.risk and i.key in positive))


def render_mood(weeks: list[Any]) -> str:
    from ..engine.mood import mood_sparkline

    if not weeks or not any(w.reflections for w in weeks):
        return "No mood yet: each reflection adds to it."
    lines = [
        f"Mood, {weeks[0].start:%Y-%m-%d} → {weeks[-1].start:%Y-%m-%d} "
        f"(one mark per week, low to high; · no reflection):",
        f"  {mood_sparkline(weeks)}",
        "",
    ]
    for w in weeks:
        if not w.reflections:
            continue
        feel = f"  {', '.join(w.feelings)}" if w.feelings else ""
        risk = f"  ({w.at_risk} with a check-in or crisis reply)" if w.at_risk else ""
        lines.append(f"  {w.week}  {w.valence:+.2f}  {w.reflections} "
                     f"reflection{'s' if w.reflections != 1 else ''}{feel}{risk}")
    return "\n".join(lines)


def mood_json(weeks: list[Any]) -> dict[str, Any]:
    from ..engine.mood import mood_sparkline

    return {
        "sparkline": mood_sparkline(weeks),
        "weeks": [{**asdict(w), "start": w.start.isoformat(), "feelings": list(w.feelings)}
                  for w in weeks],
    }


async def mood_weeks_for(core: MirrorCore, weeks: int, until: datetime | None) -> list[Any]:
    from ..engine.mood import MAX_WEEKS, mood_weeks

    if not 1 <= weeks <= MAX_WEEKS:
        raise UsageError(f"--weeks must be between 1 and {MAX_WEEKS} (got {weeks})")
    return mood_weeks(await mood_points(core), weeks=weeks, until=until)


async def cmd_mood(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    until = parse_when(args.until) if args.until else None
    weeks = await mood_weeks_for(core, args.weeks, until)
    if args.json:
        json.dump(mood_json(weeks), out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        print(render_mood(weeks), file=out)
    return 0


# --------------------------------------------------------------------------- config


def render_country(code: str) -> str:
    from ..engine.safety.helplines import helplines, where_help_is

    found = helplines().find(code) if code else None
    if found is None:
        head = ("country: not set — crisis replies name your local emergency number and "
                "findahelpline.com" if not code else
                f"country: {code} (not in the table) — crisis replies name findahelpline.com")
        return head + "\n(set one with: mirror config country CODE; list: --list)"
    return "\n".join((
        f"country: {found.code} ({found.name})",
        f"crisis lines: {where_help_is(found.code)}",
        f"if someone is hurting you: {where_help_is(found.code, violence=True)}",
    ))


def render_countries() -> str:
    from ..engine.safety.helplines import helplines

    rows = sorted(helplines().countries.values(), key=lambda c: c.code)
    return "\n".join(f"{c.code}  {c.name.removeprefix('the ')}" for c in rows)


async def set_country(core: MirrorCore, value: str) -> str:
    """Set (or clear) the country; returns its code, "" when cleared. Raises UsageError."""
    from ..engine.registry import engine_for
    from ..engine.safety.helplines import helplines

    if value.strip().lower() in COUNTRY_NONE_WORDS:
        code = ""
    else:
        found = helplines().find(value)
        if found is None:
            raise UsageError(f"no crisis lines for {value!r} in the table; "
                             "see: mirror config country --list (or 'none' for the "
                             "international directory)")
        code = found.code
    new = core.config.with_changes(country=code)
    await trio.to_thread.run_sync(core.home.save_config, new)
    core.config = new
    core.engine = engine_for(new, core.home)  # the next crisis reply names these lines
    return code


async def cmd_config(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    if args.key is None:
        if args.list:
            raise UsageError("--list goes with a key: mirror config country --list")
        print(render_country(core.config.country), file=out)
        return 0
    if args.key not in CONFIG_KEYS:
        raise UsageError(f"unknown setting {args.key!r}; settings: {', '.join(CONFIG_KEYS)}")
    if args.list:
        print(render_countries(), file=out)
        return 0
    if args.value is not None:
        await set_country(core, args.value)
    print(render_country(core.config.country), file=out)
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


# --------------------------------------------------------------------------- REPL


REPL_COMMANDS: dict[str, tuple[str, str]] = {
    "mood": ("[WEEKS]", "your mood week by week (default: the last 12 weeks)"),
    "config": ("country [CODE|none|--list]", "show or set the country of your crisis lines"),
}


async def repl_command(core: MirrorCore, name: str, rest: str) -> str:
    """Run /NAME REST for the REPL; returns the text to show."""
    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"/{name}: {exc}") from None
    if name == "mood":
        if len(words) > 1 or (words and not words[0].isdigit()):
            raise UsageError("usage: /mood [WEEKS]")
        weeks = int(words[0]) if words else 12
        return render_mood(await mood_weeks_for(core, weeks, None))
    if not words:
        return render_country(core.config.country)
    if words[0] not in CONFIG_KEYS or len(words) > 2:
        raise UsageError("usage: /config country [CODE|none|--list]")
    if len(words) == 2 and words[1] == "--list":
        return render_countries()
    if len(words) == 2:
        await set_country(core, words[1])
    return render_country(core.config.country)
