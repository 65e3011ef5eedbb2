"""Mood: how each reflection feels (its valence), and the weeks of a journal as a timeline.

Valence comes from VADER (``vaderSentiment``, MIT; its lexicon ships in the
wheel, so this works offline): a rule-based reader of English sentiment that
handles negation ("not happy"), intensity ("so", "extremely", capitals, "!")
and contrast ("but"), scored per sentence in [-1, 1].

A line at risk of harm (``safety``) is never read as a good mood, whatever its
words ("so tired of being alive", "I feel calm now that I've decided"): a
sentence with a check-in finding counts at most ``CHECK_IN_CEILING``, one with
a crisis finding at most ``CRISIS_CEILING``, and an entry at clear risk at most
``CRISIS_CEILING`` as a whole.

The timeline folds what the engine index holds (one valence per reflection,
computed when it was learned) into weeks: how many reflections, their mean and
lowest valence, the feelings named most, and how many carried a risk.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any

from .analysis import Span
from .safety import assess

NEUTRAL_BAND = 0.05  # |compound| below this: a sentence with no feeling either way
CHECK_IN_CEILING = -0.4
CRISIS_CEILING = -0.8
MAX_SENTENCES = 400  # a very long entry is read up to here
DEFAULT_WEEKS = 12
MAX_WEEKS = 520
TOP_FEELINGS = 3
SPARK_CHARS = "▁▂▃▄▅▆▇█"
SPARK_EMPTY = "·"

_SENTENCE_RE = re.compile(r"[^.!?…\n]+[.!?…]*", re.UNICODE)
# VADER reads these as "a little less", not as a negation: "hardly calm" is not calm
_WEAK_NEGATIONS_RE = re.compile(r"\b(?:hardly|barely|scarcely|no longer|not really)\b", re.I)


@cache
def _vader() -> Any:
    # reason: start-up; VADER reads its lexicon file, wanted only when a mood is computed
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _sentences(text: str) -> list[Span]:
    out = []
    for m in _SENTENCE_RE.finditer(text):
        raw = m.group()
        if any(c.isalnum() for c in raw):
            lead = len(raw) - len(raw.lstrip())
            body = raw.strip()
            out.append(Span(m.start() + lead, m.start() + lead + len(body), body))
        if len(out) >= MAX_SENTENCES:
            break
    return out


@dataclass(frozen=True)
class Valence:
    """How a reflection feels: *score* in [-1, 1] (0 when nothing leans either way),
    and the risk tier the crisis net found in it, if any."""

    score: float
    risk: str = ""  # "", "check_in" or "crisis"


def sentence_valences(text: str) -> list[tuple[Span, float]]:
    """Each sentence of *text* and its valence, lines at risk capped (module docstring)."""
    findings = assess(text).findings
    analyzer = _vader()
    out = []
    for s in _sentences(text):
        scored_text = _WEAK_NEGATIONS_RE.sub("not", s.text)
        score = float(analyzer.polarity_scores(scored_text)["compound"])
        for f in findings:
            if s.start <= f.start < s.end or f.start <= s.start < f.end:
                ceiling = CRISIS_CEILING if f.tier == "crisis" else CHECK_IN_CEILING
                score = min(score, ceiling)
        out.append((s, score))
    return out


def valence_of(text: str) -> Valence:
    """The valence of a whole reflection: the mean of its sentences that lean either way."""
    scored = sentence_valences(text)
    leaning = [v for _, v in scored if abs(v) >= NEUTRAL_BAND]
    score = sum(leaning) / len(leaning) if leaning else 0.0
    tier = assess(text).tier or ""
    if tier == "crisis":
        score = min(score, CRISIS_CEILING)
    elif tier == "check_in":
        score = min(score, CHECK_IN_CEILING)
    return Valence(round(max(-1.0, min(1.0, score)), 3), tier)


def most_troubled_sentence(text: str) -> Span:
    """The sentence of *text* that reads most negative (the whole text if it has none)."""
    scored = sentence_valences(text)
    if not scored:
        flat = " ".join(text.split())
        return Span(0, len(text), flat)
    return min(scored, key=lambda sv: (sv[1], sv[0].start))[0]


# --------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class MoodPoint:
    """One reflection's place on the timeline (from the engine index)."""

    at: datetime
    valence: float
    risk: str = ""
    feelings: tuple[str, ...] = ()  # emotion families named, never positive ones at risk


@dataclass(frozen=True)
class MoodWeek:
    week: str  # ISO week, "2026-W05"
    start: date  # its Monday
    reflections: int
    valence: float | None  # mean; None for a week with no reflection
    lowest: float | None
    at_risk: int  # reflections the crisis net answered with a crisis reply or check-in
    feelings: tuple[str, ...] = field(default_factory=tuple)  # named most, most first


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _monday(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


def mood_weeks(points: Iterable[MoodPoint], *, weeks: int = DEFAULT_WEEKS,
               until: datetime | None = None) -> list[MoodWeek]:
    """The last *weeks* weeks up to *until* (default: the newest point), oldest first."""
    items = sorted(points, key=lambda p: p.at)
    if not items or weeks <= 0:
        return []
    last = _monday(until if until is not None else items[-1].at)
    first = last - timedelta(weeks=weeks - 1)
    buckets: dict[date, list[MoodPoint]] = {}
    for p in items:
        monday = _monday(p.at)
        if first <= monday <= last:
            buckets.setdefault(monday, []).append(p)
    out = []
    for k in range(weeks):
        monday = first + timedelta(weeks=k)
        got = buckets.get(monday, [])
        names: Counter[str] = Counter(f for p in got for f in p.feelings)
        values = [p.valence for p in got]
        out.append(MoodWeek(
            week=iso_week(datetime(monday.year, monday.month, monday.day, tzinfo=UTC)),
            start=monday,
            reflections=len(got),
            valence=round(sum(values) / len(values), 3) if values else None,
            lowest=round(min(values), 3) if values else None,
            at_risk=sum(1 for p in got if p.risk),
            feelings=tuple(n for n, _ in names.most_common(TOP_FEELINGS)),
        ))
    return out


def mood_sparkline(weeks: Sequence[MoodWeek]) -> str:
    """One mark per week: low marks for low valence, ``·`` for a week with no reflection."""
    marks = []
    for w in weeks:
        if w.valence is None:
            marks.append(SPARK_EMPTY)
            continue
        level = int((w.valence + 1.0) / 2.0 * len(SPARK_CHARS))
        marks.append(SPARK_CHARS[max(0, min(len(SPARK_CHARS) - 1, level))])
    return "".join(marks)
