"""Evolution notes: how one period compares with the one before it, with evidence.

``compare(extractions, since, until)`` counts, for the period [since, until)
and the equally long period before it, how many reflections touch each theme,
feeling and tension, and which trigger → response loops occur. What rose, fell,
appeared or went quiet becomes an :class:`EvolutionNote`; each line cites the
reflection ids it rests on. ``note_text`` writes it as a structured note (the
offline form); an LLM engine may narrate it (node/llm), citing the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .extract import Extraction
from .recurrence import theme_label

MIN_SHARE_CHANGE = 0.15  # a change in share of reflections worth a line
MAX_CITES = 3
DEFAULT_PERIOD_DAYS = 30
MAX_LINES_PER_SECTION = 6


@dataclass(frozen=True)
class Movement:
    kind: str  # theme, emotion, tension, loop
    key: str
    label: str
    before: int  # reflections in the earlier period
    after: int  # reflections in the later period
    cites: tuple[str, ...]  # reflection ids, later period first

    @property
    def direction(self) -> str:
        if self.before == 0:
            return "new"
        if self.after == 0:
            return "quiet"
        return "rising" if self.after > self.before else "falling"


@dataclass(frozen=True)
class EvolutionNote:
    since: datetime
    until: datetime
    previous_since: datetime
    reflections: int
    previous_reflections: int
    movements: tuple[Movement, ...]
    steady: tuple[Movement, ...] = field(default_factory=tuple)

    @property
    def cites(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for m in self.movements + self.steady:
            for rid in m.cites:
                seen.setdefault(rid, None)
        return tuple(seen)

    def as_json(self) -> dict[str, Any]:
        def mv(m: Movement) -> dict[str, Any]:
            return {
                "kind": m.kind, "key": m.key, "label": m.label, "direction": m.direction,
                "before": m.before, "after": m.after, "cites": list(m.cites),
            }

        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "previous_since": self.previous_since.isoformat(),
            "reflections": self.reflections,
            "previous_reflections": self.previous_reflections,
            "movements": [mv(m) for m in self.movements],
            "steady": [mv(m) for m in self.steady],
            "cites": list(self.cites),
        }


def _keys(x: Extraction) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for i in x.items:
        if i.kind in ("theme", "emotion", "tension"):
            label = theme_label(i.key) if i.kind == "theme" else i.label
            out[(i.kind, i.key)] = label
    for lp in x.loops:
        label = f"{lp.trigger.split(':', 1)[-1]} → {lp.response.split(':', 1)[-1]}"
        out[("loop", lp.key)] = label
    return out


def compare(
    extractions: Iterable[Extraction],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> EvolutionNote:
    """Compare [since, until) with the same length of time just before it.

    Defaults: *until* is just after the newest reflection, *since* is
    ``DEFAULT_PERIOD_DAYS`` before *until*."""
    items = sorted(extractions, key=lambda x: x.created_at)
    if until is None:
        until = (items[-1].created_at if items else datetime.now().astimezone()) + timedelta(
            seconds=1
        )
    if since is None:
        since = until - timedelta(days=DEFAULT_PERIOD_DAYS)
    previous_since = since - (until - since)
    later = [x for x in items if since <= x.created_at < until]
    earlier = [x for x in items if previous_since <= x.created_at < since]
    counts: dict[tuple[str, str], list[int]] = {}
    labels: dict[tuple[str, str], str] = {}
    cites: dict[tuple[str, str], list[str]] = {}
    for period, group in ((0, earlier), (1, later)):
        for x in group:
            for key, label in _keys(x).items():
                counts.setdefault(key, [0, 0])[period] += 1
                labels[key] = label
                cites.setdefault(key, [])
                if period == 1:
                    cites[key].insert(0, x.rid)  # newest of the later period first
                else:
                    cites[key].append(x.rid)
    moved: list[Movement] = []
    steady: list[Movement] = []
    n0, n1 = max(1, len(earlier)), max(1, len(later))
    for key, (b, a) in counts.items():
        cited = tuple(_cite_order(cites[key], a))[:MAX_CITES]
        m = Movement(key[0], key[1], labels[key], b, a, cited)
        change = a / n1 - b / n0
        if abs(change) >= MIN_SHARE_CHANGE or (b == 0 and a >= 2) or (a == 0 and b >= 2):
            moved.append(m)
        elif a >= 2 and b >= 2:
            steady.append(m)
    order = {"tension": 0, "theme": 1, "loop": 2, "emotion": 3}
    moved.sort(key=lambda m: (order[m.kind], -abs(m.after / n1 - m.before / n0), m.key))
    steady.sort(key=lambda m: (order[m.kind], -(m.after + m.before), m.key))
    return EvolutionNote(since, until, previous_since, len(later), len(earlier),
                         tuple(moved), tuple(steady))


def _cite_order(rids: Sequence[str], later_count: int) -> list[str]:
    # later-period ids come first (newest first), then earlier ones
    return list(dict.fromkeys(rids))


def _when(moment: datetime) -> str:
    return f"{moment.astimezone():%Y-%m-%d}"


def _cite(m: Movement) -> str:
    return ", ".join(rid[:8] for rid in m.cites)


def note_text(note: EvolutionNote) -> str:
    """The structured (offline) evolution note."""
    lines = [
        f"From {_when(note.since)} to {_when(note.until)}: {note.reflections} reflections "
        f"(the {(note.until - note.since).days} days before: {note.previous_reflections}).",
    ]
    if note.reflections == 0 and note.previous_reflections == 0:
        lines.append("Nothing written in either period yet.")
        return "\n".join(lines)
    sections = (
        ("Tensions moving", "tension"),
        ("Themes rising and falling", "theme"),
        ("Loops", "loop"),
        ("Feelings", "emotion"),
    )
    for title, kind in sections:
        group = [m for m in note.movements if m.kind == kind][:MAX_LINES_PER_SECTION]
        if not group:
            continue
        lines += ["", f"{title}:"]
        for m in group:
            lines.append(
                f"  {_arrow(m)} {m.label}: {m.before} → {m.after} reflections ({m.direction})"
                f" — see {_cite(m)}"
            )
    if note.steady:
        lines += ["", "Steady in both periods:"]
        for m in note.steady[:MAX_LINES_PER_SECTION]:
            lines.append(f"  = {m.label}: {m.before} → {m.after} — see {_cite(m)}")
    if not note.movements and not note.steady:
        lines += ["", "No theme, feeling or tension moved much between the two periods."]
    return "\n".join(lines)


def _arrow(m: Movement) -> str:
    return {"new": "+", "quiet": "-", "rising": "↑", "falling": "↓"}[m.direction]
