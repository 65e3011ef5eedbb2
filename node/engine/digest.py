"""A digest of what a week or a month held: themes, feelings, tensions moving, loops,
and a question to sit with — each line resting on the reflections it cites.

``build_digest(extractions, since=…, until=…, tensions=…)`` reads the engine's
index entries of the period and of the equally long period before
(``evolution.compare``), the tensions the person lives (``lived``, for their
status) and returns a :class:`Digest`; ``digest_text`` writes it. The question
is grounded in what the period held most: a tension that was active, else the
feeling that came back most, else the main theme. Pure; the offline form.
An LLM engine may retell it (``node/llm/grounded``), citing the same ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from .evolution import Movement, compare
from .extract import Extraction
from .lived import TensionSummary, step_label
from .recurrence import theme_label

Period = Literal["week", "month"]
PERIOD_DAYS: dict[Period, int] = {"week": 7, "month": 30}
MAX_LINES = 5
MAX_CITES_PER_LINE = 3
MAX_QUOTE_CHARS = 90


@dataclass(frozen=True)
class DigestLine:
    kind: str  # theme, emotion, tension, loop
    key: str
    label: str
    count: int  # reflections of the period
    before: int  # reflections of the period before
    note: str  # "new", "up from 2", "quiet this week", a tension's status …
    cites: tuple[str, ...]
    quote: str = ""  # a sentence of the newest reflection it rests on


@dataclass(frozen=True)
class Digest:
    period: Period
    since: datetime
    until: datetime
    reflections: int
    days: int
    themes: tuple[DigestLine, ...]
    feelings: tuple[DigestLine, ...]
    tensions: tuple[DigestLine, ...]
    loops: tuple[DigestLine, ...]
    question: str

    @property
    def cites(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for line in (*self.themes, *self.feelings, *self.tensions, *self.loops):
            for rid in line.cites:
                seen.setdefault(rid, None)
        return tuple(seen)

    def as_json(self) -> dict[str, Any]:
        def lines(group: Sequence[DigestLine]) -> list[dict[str, Any]]:
            return [{"key": ln.key, "label": ln.label, "count": ln.count, "before": ln.before,
                     "note": ln.note, "cites": list(ln.cites), "quote": ln.quote}
                    for ln in group]

        return {
            "period": self.period, "since": self.since.isoformat(),
            "until": self.until.isoformat(), "reflections": self.reflections,
            "days": self.days, "themes": lines(self.themes), "feelings": lines(self.feelings),
            "tensions": lines(self.tensions), "loops": lines(self.loops),
            "question": self.question, "cites": list(self.cites),
        }


def _note(m: Movement, period: Period) -> str:
    if m.before == 0:
        return "new"
    if m.after == 0:
        return f"quiet this {period}"
    if m.after > m.before:
        return f"up from {m.before}"
    if m.after < m.before:
        return f"down from {m.before}"
    return "as before"


def _quote(x: Extraction | None, kind: str, key: str) -> str:
    if x is None:
        return ""
    for i in x.items:
        if i.kind == kind and i.key == key:
            q = " ".join(i.evidence.quote.split())
            if q[:1].islower() and " " in q:  # cut out of a longer sentence: from a word
                q = "…" + q.split(" ", 1)[1]
            if len(q) > MAX_QUOTE_CHARS:
                q = q[:MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + "…"
            return q
    return ""


def build_digest(
    extractions: Sequence[Extraction],
    *,
    period: Period = "week",
    until: datetime,
    tensions: Sequence[TensionSummary] = (),
) -> Digest:
    """The digest of the *period* ending at *until*."""
    since = until - timedelta(days=PERIOD_DAYS[period])
    note = compare(extractions, since=since, until=until)
    inside = [x for x in extractions if since <= x.created_at < until]
    by_id = {x.rid: x for x in inside}
    moved = [*note.movements, *note.steady]

    def lines(kind: str) -> tuple[DigestLine, ...]:
        group = [m for m in moved if m.kind == kind and (m.after > 0 or m.before >= 2)]
        group.sort(key=lambda m: (-m.after, -m.before, m.key))
        out = []
        for m in group[:MAX_LINES]:
            cites = tuple(r for r in m.cites if r in by_id)[:MAX_CITES_PER_LINE] or m.cites[:1]
            label = theme_label(m.key) if kind == "theme" else m.label
            out.append(DigestLine(kind, m.key, label, m.after, m.before, _note(m, period),
                                  cites, _quote(by_id.get(cites[0]) if cites else None,
                                                kind, m.key)))
        return tuple(out)

    status = {t.key: t.status for t in tensions}
    tension_lines = tuple(  # the tensions the person lives, not every pull read once
        DigestLine(ln.kind, ln.key, ln.label, ln.count, ln.before,
                   ", ".join(p for p in (ln.note, status[ln.key]) if p), ln.cites, ln.quote)
        for ln in lines("tension") if ln.key in status
    )
    loop_runs: Counter[str] = Counter()
    loop_cites: dict[str, list[str]] = {}
    loop_labels: dict[str, str] = {}
    for x in sorted(inside, key=lambda x: x.created_at, reverse=True):
        for lp in x.loops:
            if lp.continued:
                continue
            loop_runs[lp.response] += 1
            loop_cites.setdefault(lp.response, []).append(x.rid)
            consequences = ", ".join(lp.consequences) or "…"
            loop_labels.setdefault(lp.response, f"{step_label(lp.trigger)} → "
                                   f"{step_label(lp.response)} → {consequences}")
    loops = tuple(
        DigestLine("loop", r, loop_labels[r], n, 0, f"{n}×", tuple(loop_cites[r][:3]))
        for r, n in loop_runs.most_common(MAX_LINES)
    )
    days = len({x.created_at.astimezone().date() for x in inside})
    themes, feelings = lines("theme"), lines("emotion")
    return Digest(period, since, until, len(inside), days, themes, feelings, tension_lines,
                  loops, _question(period, themes, feelings, tension_lines))


def _question(period: Period, themes: Sequence[DigestLine], feelings: Sequence[DigestLine],
              tensions: Sequence[DigestLine]) -> str:
    active = [t for t in tensions if t.count > 0]
    if active:
        a, _, b = active[0].label.partition(" vs ")
        return f"What did the pull between {a} and {b} ask of you this {period}?"
    came_back = [f for f in feelings if f.count >= 2]
    if came_back:
        return (f"What was underneath the {came_back[0].label} that came back in "
                f"{came_back[0].count} reflections this {period}?")
    if themes and themes[0].count > 0:
        return f"What place did {themes[0].label} take in your {period}?"
    return f"What from this {period} would you want to remember?"


def _day(moment: datetime) -> str:
    return f"{moment.astimezone():%Y-%m-%d}"


def _see(line: DigestLine) -> str:
    return ", ".join(rid[:8] for rid in line.cites)


def digest_text(d: Digest) -> str:
    """The structured (offline) digest."""
    last = d.until - timedelta(seconds=1)
    head = (f"Your {d.period}, {_day(d.since)} to {_day(last)}: "
            f"{d.reflections} reflection{'s' * (d.reflections != 1)}"
            f"{f' on {d.days} day' + 's' * (d.days != 1) if d.reflections else ''}.")
    if d.reflections == 0:
        return f"{head}\nNothing written this {d.period}."
    out = [head]
    for title, group in (("Themes", d.themes), ("Feelings", d.feelings),
                         ("Tensions moving", d.tensions), ("Loops", d.loops)):
        if not group:
            continue
        out += ["", f"{title}:"]
        for ln in group:
            count = ln.note if ln.kind == "loop" else (
                f"{ln.count} reflection{'s' * (ln.count != 1)}" + (f", {ln.note}"
                                                                    if ln.note else ""))
            quote = f" “{ln.quote}”" if ln.quote and ln.count else ""
            out.append(f"  {ln.label}: {count}{quote} — see {_see(ln)}")
    out += ["", f"A question to sit with: {d.question}"]
    return "\n".join(out)
