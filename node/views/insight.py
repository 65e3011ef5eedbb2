"""Answers, digests, the mood timeline and the crisis lines as text."""

from __future__ import annotations

from collections.abc import Sequence

from ..app.results import DigestResult
from ..engine.ask import Answer
from ..engine.mood import MoodWeek, mood_sparkline
from ..engine.safety.helplines import helplines, where_help_is


def render_answer(answer: Answer) -> str:
    lines = []
    if answer.note:
        lines.append(f"({answer.note}; here is the offline answer)")
    lines.append(answer.text)
    if answer.method == "model" and answer.citations:
        lines += ["", "Cited:"] + [f"  {c.created_at.astimezone():%Y-%m-%d} [{c.rid[:8]}] "
                                   f"“{c.quote}”" for c in answer.citations]
    if answer.private_left_out:
        n = answer.private_left_out
        lines.append(f"({n} private reflection{'s' * (n != 1)} left out: the model is not "
                     "on this machine)")
    return "\n".join(lines)


def render_mood(weeks: Sequence[MoodWeek]) -> str:
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


def render_country(code: str) -> str:
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
    rows = sorted(helplines().countries.values(), key=lambda c: c.code)
    return "\n".join(f"{c.code}  {c.name.removeprefix('the ')}" for c in rows)


def render_digest(result: DigestResult) -> str:
    if result.note:
        return f"({result.note}; here is the offline digest)\n\n{result.text}"
    return result.text
