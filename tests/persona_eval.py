"""Scoring the offline engine against the hand-labelled persona journals.

Each file in ``tests/fixtures/personas/`` is one life: its reflections, and
labels written by hand — the tensions the person lives (two poles, each a list
of the names a person might give it, and the status at the end of the
journal), the loops they run (trigger, response, consequence, each a list of
names), the people in it and the arc. ``held_out`` journals were never used to tune
the engine: they are scored and reported apart, by ``set`` — the round in which
each was written and first scored (``held-out-1``: the first four; ``held-out-2``:
four written and scored before the engine changes of 2026-12-08; ``fresh-1``:
two written after those changes). A journal without ``set`` is ``tuning`` (or
``held-out-1`` when held out).

The engine's answer is what ``mirror tensions`` and ``mirror patterns`` show:
the journal is extracted as ``Understanding.rebuild`` does (each entry with the
one before it), derived, and read through ``lived``.

Matching (strict): a shown tension is right when each pole matches a name of a
different side of one labelled tension; a shown loop when its response matches
the labelled response and its trigger or one of its two main consequences
matches too. Names match when equal after lower-casing and dropping the node
kind ("event:", "person:" …), or are the same words but for inflection
(``cues.lemma``: "care" ~ "caring", "scrolling" ~ "scroll"; added 2026-12-08,
every figure of that day is measured with it), or when they share a word stem
of at least ``STEM_CHARS`` letters ("staying silent" ~ "silence"). Each labelled item is
matched at most once (a maximum matching, so the order of the findings does not
matter): a second shown item for it counts against precision.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crdt.journal import Reflection
from crdt.values import parse_timestamp
from node.engine.cues import lemma
from node.engine.derive import derive_all
from node.engine.extract import extract
from node.engine.lived import LoopSummary, TensionSummary, lived_loops, lived_tensions

PERSONAS = Path(__file__).resolve().parent / "fixtures" / "personas"
STEM_CHARS = 5
LOOP_CONSEQUENCES_COMPARED = 2


@dataclass(frozen=True)
class Persona:
    name: str
    held_out: bool
    set: str  # "tuning", or the held-out set the journal was first scored in
    labels: dict[str, Any]
    reflections: tuple[Reflection, ...]


def load_personas() -> list[Persona]:
    out = []
    for path in sorted(PERSONAS.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        reflections = tuple(
            Reflection(f"{path.stem[:4]}{i:08d}", parse_timestamp(e["at"]), e["text"],
                       private=bool(e.get("private", False)))
            for i, e in enumerate(data["reflections"])
        )
        held_out = bool(data["held_out"])
        kind = str(data.get("set", "held-out-1" if held_out else "tuning"))
        out.append(Persona(path.stem, held_out, kind, data["labels"], reflections))
    return out


def _norm(name: str) -> str:
    name = name.split(":", 1)[-1] if ":" in name else name
    return " ".join(name.lower().replace("-", " ").split())


def _stems(name: str) -> set[str]:
    return {w[:STEM_CHARS] for w in _norm(name).split() if len(w) >= STEM_CHARS}


def _lemmas(name: str) -> tuple[str, ...]:
    return tuple(lemma(w) for w in _norm(name).split())


def same_name(found: str, labelled: str) -> bool:
    a, b = _norm(found), _norm(labelled)
    return bool(a) and (a == b or _lemmas(a) == _lemmas(b) or bool(_stems(a) & _stems(b)))


def _any(found: str, names: Sequence[str]) -> bool:
    return any(same_name(found, n) for n in names)


def tension_matches(t: TensionSummary, label: dict[str, Any]) -> bool:
    left, right = label["poles"]
    a, b = t.poles
    return (_any(a, left) and _any(b, right)) or (_any(a, right) and _any(b, left))


def loop_matches(lp: LoopSummary, label: dict[str, Any]) -> bool:
    if not any(_any(r, label["response"]) for r in lp.responses):
        return False
    consequences = [c for c, _ in lp.consequences[:LOOP_CONSEQUENCES_COMPARED]]
    return _any(lp.trigger, label["trigger"]) or any(
        _any(c, label["consequence"]) for c in consequences
    )


@dataclass
class Score:
    shown: int = 0
    right: int = 0  # shown items that matched a labelled item not matched before
    labelled: int = 0
    found: int = 0  # labelled items matched
    status_right: int = 0  # matched tensions whose status is the labelled one
    misses: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        self.shown += other.shown
        self.right += other.right
        self.labelled += other.labelled
        self.found += other.found
        self.status_right += other.status_right
        self.misses += other.misses
        self.extras += other.extras

    @property
    def precision(self) -> float:
        return self.right / self.shown if self.shown else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.labelled if self.labelled else 1.0


@dataclass
class PersonaResult:
    persona: Persona
    tensions: Score
    loops: Score
    shown_tensions: list[TensionSummary]
    shown_loops: list[LoopSummary]


def _score(shown: Sequence[Any], labels: Sequence[dict[str, Any]], matches: Any,
           describe: Any, *, status: bool = False) -> Score:
    score = Score(shown=len(shown), labelled=len(labels))
    pairs = _best_matching([[k for k, lb in enumerate(labels) if matches(item, lb)]
                            for item in shown])
    taken = set(pairs.values())
    for i, item in enumerate(shown):
        hit = pairs.get(i)
        if hit is None:
            score.extras.append(describe(item))
            continue
        score.right += 1
        if status and getattr(item, "status", None) == labels[hit].get("status"):
            score.status_right += 1
    score.found = len(taken)
    score.misses = [str(lb.get("note", lb)) for k, lb in enumerate(labels) if k not in taken]
    return score


def _best_matching(candidates: Sequence[Sequence[int]]) -> dict[int, int]:
    """A maximum matching of shown items to labelled ones (augmenting paths): the
    score does not depend on the order the engine lists its findings in."""
    owner: dict[int, int] = {}  # labelled -> shown

    def augment(i: int, seen: set[int]) -> bool:
        for k in candidates[i]:
            if k in seen:
                continue
            seen.add(k)
            if k not in owner or augment(owner[k], seen):
                owner[k] = i
                return True
        return False

    for i in range(len(candidates)):
        augment(i, set())
    return {i: k for k, i in owner.items()}


def evaluate(persona: Persona) -> PersonaResult:
    """What the engine shows for *persona*'s journal, scored against its labels."""
    ordered = sorted(persona.reflections, key=lambda r: r.created_at)
    extractions = [extract(r, previous=ordered[i - 1] if i else None)
                   for i, r in enumerate(ordered)]
    state = derive_all(extractions, graph=False)
    tensions = lived_tensions(state.tensions.items(), state.latest)
    loops = lived_loops(state.loops.items())
    return PersonaResult(
        persona,
        _score(tensions, persona.labels["tensions"], tension_matches,
               lambda t: f"{t.key} ({t.status}, {t.occurrences}×)", status=True),
        _score(loops, persona.labels["loops"], loop_matches,
               lambda lp: f"{lp.label} ({lp.count}×)"),
        tensions,
        loops,
    )
