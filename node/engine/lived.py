"""What a person lives, read from the derived records: tensions over time, patterns, loops.

The records (``derive``) count everything the extraction found; these views
say what of it a person lives with, the way they would say it.

**Tensions.** Two records whose poles differ only by near names ("work vs
family" and "achievement vs family", ``near`` in ``data/tensions.json``) are
one tension. A tension is shown once it comes back: set against each other in
so many words at least once and found in ``MIN_STATED_SHOWN`` entries, or
found together in ``MIN_FOUND_SHOWN`` conflicted entries; a pair that is not a
listed opposite must be stated ``MIN_UNLISTED_STATED`` times. One whose evidence is mostly
that of a stronger tension sharing a pole is the same pull read twice and is
left out. Its status, relative to the newest reflection (``as_of``):

* ``resolved``  — its last mention says the person is through with it ("made my
  peace", "I decided"), or quiet for more than ``RESOLVED_AFTER_DAYS`` and
  ``RESOLVED_AFTER_GAPS`` of its usual gaps;
* ``easing``    — quiet for more than ``EASING_AFTER_DAYS`` and
  ``EASING_AFTER_GAPS`` of its usual gaps (a tension that comes back every
  month is not easing after three quiet weeks), or found in the last
  ``RECENT_WEEKS`` weeks at most half as often as in the weeks before;
* ``emerging``  — first seen within ``EMERGING_DAYS``;
* ``recurring`` — otherwise: it keeps coming back.

**Loops.** Records of one response (a behaviour) are one loop whatever set it
off; its trigger is the one seen most, its consequences the ones it led to most
often. Loops of near responses ("withdrawing" and "cancelling plans", ``near``
in ``data/loops.json``) that mostly led to the same place (one of their two main
consequences, "guilt" and "shame" counting as one), or ran in the same entries,
are one loop. A loop is shown from ``minimum`` runs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from itertools import pairwise
from typing import Any, Literal

from crdt.values import parse_timestamp, read_int

from .derive import PATTERN_MIN, SPARK_WEEKS, week_of, week_start
from .poles import pole_lexicon

TensionStatus = Literal["emerging", "recurring", "easing", "resolved"]
TENSION_STATUSES: tuple[TensionStatus, ...] = ("recurring", "emerging", "easing", "resolved")

EASING_AFTER_DAYS = 21
EASING_AFTER_GAPS = 2.5
RESOLVED_AFTER_DAYS = 45
RESOLVED_AFTER_GAPS = 4.0
EMERGING_DAYS = 35
RECENT_WEEKS = 6
EPISODE_GAP_WEEKS = 2  # this many empty weeks between occurrences start a new episode
MIN_STATED_SHOWN = 2
MIN_FOUND_SHOWN = 3
MIN_UNLISTED_STATED = 2
MIN_UNSTATED_LIFT = 2.0  # a tension never stated: its poles meet this much more than chance
SAME_PULL_SHARE = 2 / 3  # evidence share that makes a weaker tension the same pull
SAME_LOOP_SHARE = 1 / 2  # entries shared by two near loops that make them one
MAX_MERGED_EVIDENCE = 8
MAX_LOOP_DATES = 12
MAX_LOOP_CONSEQUENCES = 2


# --------------------------------------------------------------------------- tensions


@dataclass(frozen=True)
class TensionSummary:
    key: str
    poles: tuple[str, str]
    occurrences: int
    stated: int  # entries that set the two poles against each other in so many words
    intensity: float  # mean, 1..5
    max_intensity: int
    status: TensionStatus
    episodes: int  # how many times it came back after a quiet stretch (loop count)
    first_seen: str
    last_seen: str
    weekly: tuple[int, ...]  # the last SPARK_WEEKS weeks up to as_of, oldest first
    evidence: tuple[dict[str, Any], ...]


def episode_count(weeks: Mapping[str, Any]) -> int:
    active = sorted(week_start(w) for w, n in weeks.items() if read_int(n) > 0)
    if not active:
        return 0
    episodes = 1
    for prev, cur in pairwise(active):
        if (cur - prev).days > 7 * (EPISODE_GAP_WEEKS + 1) - 1:
            episodes += 1
    return episodes


def _days(later: str, earlier: str) -> int:
    try:
        return (parse_timestamp(later) - parse_timestamp(earlier)).days
    except ValueError:
        return 0


def _weeks_of(record: Mapping[str, Any]) -> dict[str, int]:
    weeks = record.get("weeks", {})
    return {str(w): read_int(n) for w, n in weeks.items()} if isinstance(weeks, dict) else {}


def _usual_gap_days(weeks: Mapping[str, int]) -> float:
    """The median gap, in days, between the weeks a tension came up (a week if once)."""
    active = sorted(week_start(w) for w, n in weeks.items() if n > 0)
    gaps = sorted((b - a).days for a, b in pairwise(active))
    return float(gaps[len(gaps) // 2]) if gaps else 7.0


def tension_status(record: Mapping[str, Any], as_of: str) -> TensionStatus:
    """Where a tension stands at *as_of* (the newest reflection), from its record."""
    last = str(record.get("last_seen", ""))
    first = str(record.get("first_seen", "")) or last
    resolved_at = str(record.get("resolved_at", "") or "")
    quiet = _days(as_of, last)
    gap = _usual_gap_days(_weeks_of(record))
    if (resolved_at and resolved_at >= last) or quiet > max(RESOLVED_AFTER_DAYS,
                                                             RESOLVED_AFTER_GAPS * gap):
        return "resolved"
    if quiet > max(EASING_AFTER_DAYS, EASING_AFTER_GAPS * gap):
        return "easing"
    if _days(as_of, first) <= EMERGING_DAYS:
        return "emerging"
    try:
        end = week_start(week_of(parse_timestamp(as_of)))
    except ValueError:
        return "recurring"
    recent = before = 0
    for week, n in _weeks_of(record).items():
        age = (end - week_start(week)).days // 7
        if 0 <= age < RECENT_WEEKS:
            recent += n
        elif RECENT_WEEKS <= age < 2 * RECENT_WEEKS:
            before += n
    if before >= 2 and recent * 2 <= before:
        return "easing"
    return "recurring"


def summarize_tension(record: Mapping[str, Any], as_of: str) -> TensionSummary:
    occurrences = read_int(record.get("occurrences"))
    weeks = _weeks_of(record)
    poles = record.get("poles") or str(record.get("key", "")).split(" vs ", 1)
    end = week_start(week_of(parse_timestamp(as_of))) if as_of else date.today()
    weekly = []
    for k in range(SPARK_WEEKS - 1, -1, -1):
        d = end - timedelta(weeks=k)
        weekly.append(weeks.get(week_of(datetime(d.year, d.month, d.day)), 0))
    return TensionSummary(
        key=str(record.get("key", "")),
        poles=(str(poles[0]), str(poles[-1])),
        occurrences=occurrences,
        # a record written before "stated" was kept held stated tensions only
        stated=read_int(record.get("stated", occurrences)),
        intensity=round(read_int(record.get("intensity_total")) / occurrences, 1)
        if occurrences
        else 0.0,
        max_intensity=read_int(record.get("max_intensity")),
        status=tension_status(record, as_of),
        episodes=episode_count(weeks),
        first_seen=str(record.get("first_seen", "")),
        last_seen=str(record.get("last_seen", "")),
        weekly=tuple(weekly),
        evidence=tuple(e for e in record.get("evidence", []) if isinstance(e, dict)),
    )


def _near(a: str, b: str) -> bool:
    groups = pole_lexicon().near
    return a == b or (a in groups and groups.get(a) == groups.get(b))


def _poles(record: Mapping[str, Any]) -> tuple[str, str]:
    poles = record.get("poles") or str(record.get("key", "")).split(" vs ", 1)
    return str(poles[0]), str(poles[-1])


def _rids(record: Mapping[str, Any]) -> set[str]:
    return {str(e.get("rid")) for e in record.get("evidence", []) if isinstance(e, dict)}


def _strength(record: Mapping[str, Any]) -> tuple[int, int, str]:
    return (read_int(record.get("stated", record.get("occurrences"))),
            read_int(record.get("occurrences")), str(record.get("key", "")))


def _same_tension(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether *b* names *a*'s poles with near names ("achievement" for "work")."""
    (a1, a2), (b1, b2) = _poles(a), _poles(b)
    return (_near(a1, b1) and _near(a2, b2)) or (_near(a1, b2) and _near(a2, b1))


def _merge_tension(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    both = len(_rids(into) & _rids(other))  # entries where both were read: count once
    weeks = _weeks_of(into)
    for w, n in _weeks_of(other).items():
        weeks[w] = weeks.get(w, 0) + n
    evidence = {str(e.get("rid")): e for e in (*into.get("evidence", []),
                                               *other.get("evidence", [])) if isinstance(e, dict)}
    resolved = max(str(into.get("resolved_at", "") or ""), str(other.get("resolved_at", "") or ""))
    return {
        **into,
        "occurrences": read_int(into.get("occurrences")) + read_int(other.get("occurrences"))
        - both,
        "stated": read_int(into.get("stated", into.get("occurrences")))
        + read_int(other.get("stated", other.get("occurrences"))),
        "intensity_total": read_int(into.get("intensity_total"))
        + read_int(other.get("intensity_total")),
        "max_intensity": max(read_int(into.get("max_intensity")),
                             read_int(other.get("max_intensity"))),
        "first_seen": min(str(into.get("first_seen", "")), str(other.get("first_seen", ""))),
        "last_seen": max(str(into.get("last_seen", "")), str(other.get("last_seen", ""))),
        "resolved_at": resolved,
        "weeks": weeks,
        "evidence": sorted(evidence.values(), key=lambda e: str(e.get("at", "")))[
            -MAX_MERGED_EVIDENCE:
        ],
    }


def _lifts(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Key → how much more often its two poles meet in the journal's conflicted
    entries than two poles as common would by chance: its entries times all the
    entries with a tension, over the entries of one pole times those of the other.
    A pole the person names everywhere ("work") meets everything; that is not a
    tension until it is stated."""
    entries: dict[str, set[str]] = {}
    everything: set[str] = set()
    for r in records:
        rids = _rids(r)
        everything |= rids
        for pole in _poles(r):
            entries.setdefault(pole, set()).update(rids)
    out: dict[str, float] = {}
    for r in records:
        a, b = _poles(r)
        below = len(entries.get(a, ())) * len(entries.get(b, ()))
        out[str(r.get("key", ""))] = len(_rids(r)) * len(everything) / below if below else 0.0
    return out


def _shown(record: Mapping[str, Any]) -> bool:
    found = read_int(record.get("occurrences"))
    stated = read_int(record.get("stated", found))
    a, b = _poles(record)
    if pole_lexicon().weight(a, b) == 0 and stated < MIN_UNLISTED_STATED:
        return False
    return (stated >= 1 and found >= MIN_STATED_SHOWN) or found >= MIN_FOUND_SHOWN


def lived_tensions(
    records: Iterable[tuple[str, Mapping[str, Any]]], as_of: str, *, everything: bool = False
) -> list[TensionSummary]:
    """The tensions a person lives, strongest first within each status; with
    *everything*, every record as it is (no merging, no threshold)."""
    if everything:
        out = [summarize_tension(r, as_of) for _, r in records]
    else:
        merged: list[dict[str, Any]] = []
        for _, record in sorted(records, key=lambda kv: _strength(kv[1]), reverse=True):
            home = next((m for m in merged if _same_tension(m, record)), None)
            if home is None:
                merged.append(dict(record))
            else:
                merged[merged.index(home)] = _merge_tension(home, record)
        kept: list[dict[str, Any]] = []
        lift = _lifts(merged)
        for record in sorted(merged, key=_strength, reverse=True):
            if not _shown(record):
                continue
            stated = read_int(record.get("stated", record.get("occurrences")))
            if not stated and lift.get(str(record.get("key", "")), 0.0) < MIN_UNSTATED_LIFT:
                continue  # two poles met no more often than any two of this journal's do
            mine = _rids(record)
            if any(set(_poles(k)) & set(_poles(record))
                   and len(mine & _rids(k)) >= SAME_PULL_SHARE * max(1, len(mine))
                   for k in kept):
                continue
            kept.append(record)
        out = [summarize_tension(r, as_of) for r in kept]
    rank = {s: i for i, s in enumerate(TENSION_STATUSES)}
    out.sort(key=lambda t: (rank[t.status], -t.stated, -t.occurrences, t.key))
    return out


# --------------------------------------------------------------------------- loops


@dataclass(frozen=True)
class LoopSummary:
    """trigger → response → consequences, lived ``count`` times."""

    key: str  # "<trigger> -> <response>" of its main record
    label: str  # "request → saying yes → exhaustion, resentment"
    trigger: str  # node id seen most ("" if none)
    triggers: tuple[tuple[str, int], ...]
    responses: tuple[str, ...]  # "behaviour:<name>", the main one first
    consequences: tuple[tuple[str, int], ...]  # most often first
    count: int
    first_seen: str
    last_seen: str
    dates: tuple[str, ...]  # its newest runs (ISO dates), oldest first
    evidence: tuple[dict[str, Any], ...]


def step_label(node: str) -> str:
    """How a loop step is said: "event:request" → "request", "person:my dad" → "my dad"."""
    return node.split(":", 1)[-1] if node else "something"


@cache
def _loop_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        resources.files(f"{__package__}.data").joinpath("loops.json").read_text("utf-8")
    )
    return data


@cache
def _near_responses() -> dict[str, frozenset[int]]:
    """Response → the near groups it is in (a response may be near two others that are
    not near each other: "saying yes" to "overworking" and to "lending money")."""
    out: dict[str, set[int]] = {}
    for g, group in enumerate(_loop_data().get("near", [])):
        for r in group:
            out.setdefault(f"behaviour:{r}", set()).add(g)
    return {r: frozenset(gs) for r, gs in out.items()}


@cache
def _near_consequences() -> dict[str, int]:
    groups = _loop_data().get("near_consequences", [])
    return {c: g for g, group in enumerate(groups) for c in group}



def _ranked(counts: Counter[str]) -> tuple[tuple[str, int], ...]:
    """Most first, then by name: the same whatever order the records were read in."""
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class _LoopGroup:
    responses: list[str]
    count: int
    triggers: Counter[str]
    consequences: Counter[str]
    first: str
    last: str
    seen: set[str]  # "at|rid"
    evidence: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, record: Mapping[str, Any]) -> _LoopGroup:
        count = read_int(record.get("count"))
        trigger = str(record.get("trigger", ""))
        raw = record.get("consequences", {})
        cons = Counter({str(k): read_int(v) for k, v in raw.items()}) if isinstance(
            raw, dict) else Counter()
        return cls(
            [str(record.get("response", ""))], count,
            Counter({trigger: count}) if trigger and count else Counter(), cons,
            str(record.get("first_seen", "")), str(record.get("last_seen", "")),
            {str(v) for v in record.get("seen", [])},
            {str(e.get("rid")): e for e in record.get("evidence", []) if isinstance(e, dict)},
        )

    def absorb(self, other: _LoopGroup) -> None:
        for r in other.responses:
            if r not in self.responses:
                self.responses.append(r)
        shared = len(self.rids & other.rids)
        self.count += other.count - shared
        self.triggers += other.triggers
        self.consequences += other.consequences
        self.first = min(self.first, other.first) if self.first else other.first
        self.last = max(self.last, other.last)
        self.seen |= other.seen
        self.evidence.update(other.evidence)

    @property
    def rids(self) -> set[str]:
        return {s.split("|", 1)[-1] for s in self.seen}

    def places(self) -> set[str]:
        """Where it mostly ends up: its two main consequences (and any as frequent as
        the second), near names as one."""
        ranked = _ranked(self.consequences)
        if not ranked:
            return set()
        floor = ranked[min(1, len(ranked) - 1)][1]
        near = _near_consequences()
        return {str(near.get(c, c)) for c, n in ranked if n >= floor}

    def summary(self) -> LoopSummary:
        triggers = _ranked(self.triggers)
        trigger = triggers[0][0] if triggers else ""
        cons = _ranked(self.consequences)
        label = " → ".join((
            step_label(trigger),
            " / ".join(step_label(r) for r in self.responses),
            ", ".join(c for c, _ in cons[:MAX_LOOP_CONSEQUENCES]) or "…",
        ))
        dates = sorted({s.split("|", 1)[0][:10] for s in self.seen})[-MAX_LOOP_DATES:]
        evidence = sorted(self.evidence.values(), key=lambda e: str(e.get("at", "")))
        return LoopSummary(
            key=f"{trigger or 'something'} -> {self.responses[0]}",
            label=label, trigger=trigger, triggers=triggers,
            responses=tuple(self.responses), consequences=cons, count=self.count,
            first_seen=self.first, last_seen=self.last, dates=tuple(dates),
            evidence=tuple(evidence[-MAX_MERGED_EVIDENCE:]),
        )


def lived_loops(
    records: Iterable[tuple[str, Mapping[str, Any]]], *, minimum: int = PATTERN_MIN
) -> list[LoopSummary]:
    """The loops a person lives (run at least *minimum* times), most run first."""
    by_response: dict[str, _LoopGroup] = {}
    for _, record in sorted(records, key=lambda kv: kv[0]):
        group = _LoopGroup.of(record)
        if group.responses[0] in by_response:
            by_response[group.responses[0]].absorb(group)
        else:
            by_response[group.responses[0]] = group
    groups = sorted(by_response.values(), key=lambda g: (-g.count, g.responses[0]))
    near = _near_responses()
    merged: list[_LoopGroup] = []
    for g in groups:
        home = next((
            m for m in merged
            if near.get(m.responses[0], frozenset()) & near.get(g.responses[0], frozenset())
            and (g.places() & m.places()
                 or len(g.rids & m.rids) >= SAME_LOOP_SHARE * max(1, len(g.rids)))
        ), None)
        if home is None:
            merged.append(g)
        else:
            home.absorb(g)
    out = [g.summary() for g in merged if g.count >= minimum]
    out.sort(key=lambda s: (-s.count, s.key))
    return out


# --------------------------------------------------------------------------- patterns


@dataclass(frozen=True)
class PatternSummary:
    kind: str  # theme, emotion, person, value, belief, or "loop"
    key: str
    label: str
    count: int
    first_seen: str
    last_seen: str
    evidence: tuple[dict[str, Any], ...]


def summarize_patterns(
    recurring: Iterable[tuple[str, Mapping[str, Any]]],
    loops: Sequence[LoopSummary] = (),
    *,
    minimum: int = PATTERN_MIN,
) -> list[PatternSummary]:
    out: list[PatternSummary] = []
    for key, r in recurring:
        count = read_int(r.get("count"))
        if count >= minimum:
            out.append(PatternSummary(
                str(r.get("kind", "")), key, str(r.get("label", key)), count,
                str(r.get("first_seen", "")), str(r.get("last_seen", "")),
                tuple(e for e in r.get("evidence", []) if isinstance(e, dict)),
            ))
    for lp in loops:
        if lp.count >= minimum:
            out.append(PatternSummary("loop", lp.key, lp.label, lp.count, lp.first_seen,
                                      lp.last_seen, lp.evidence))
    out.sort(key=lambda p: (p.kind == "loop", -p.count, p.key))
    return out
