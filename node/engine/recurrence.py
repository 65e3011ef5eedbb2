"""Threads that recur: themes, people and feelings an entry shares with recent ones.

The mirrorback notes them factually ("You've written about work in 3 of your
last 10 reflections"). Only the last ``PAST_WINDOW`` reflections are read, and
each past text is reduced once to an ``EntrySignature`` (cached by text), so
the cost does not grow with the size of the journal. Patterns over the whole
journal belong to the engine issue's pattern store, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from crdt.journal import Reflection

from .analysis import Analysis
from .lexicon import lexicon
from .text import analyze

PAST_WINDOW = 20  # most recent past reflections compared with a new one
MIN_RECURRENCE = 2  # past reflections that must share a thread for it to be noted
SIGNATURE_CACHE_ENTRIES = 1024

ThreadKind = Literal["person", "theme", "feeling"]


@dataclass(frozen=True)
class EntrySignature:
    themes: frozenset[str]
    people: frozenset[str]  # Person.key
    feelings: frozenset[str]  # families of named (not negated) feelings


@dataclass(frozen=True)
class Thread:
    """Something this entry shares with *count* of the last *window* reflections."""

    kind: ThreadKind
    key: str  # theme name, Person.key or feeling family
    count: int
    window: int
    in_previous: bool  # the most recent past reflection shares it


def signature_of(analysis: Analysis) -> EntrySignature:
    return EntrySignature(
        themes=frozenset(t.name for t in analysis.themes),
        people=frozenset(p.key for p in analysis.people),
        feelings=frozenset(f.family for f in analysis.named_feelings),
    )


@lru_cache(maxsize=SIGNATURE_CACHE_ENTRIES)
def signature(text: str) -> EntrySignature:
    """What *text* is about, reduced for comparison. Cached: past entries repeat."""
    return signature_of(analyze(text))


def recent(past: Sequence[Reflection], window: int = PAST_WINDOW) -> list[Reflection]:
    """The last *window* of *past* (given oldest first), oldest first."""
    tail = list(past[-window:]) if window > 0 else []
    tail.sort(key=lambda r: r.created_at)
    return tail


def recurring_threads(
    analysis: Analysis, past: Sequence[Reflection], window: int = PAST_WINDOW
) -> tuple[Thread, ...]:
    """Threads of *analysis* found again in the recent *past*; most shared first.

    A thread is kept when at least ``MIN_RECURRENCE`` recent reflections share
    it, or when the previous reflection does.
    """
    tail = recent(past, window)
    if not tail:
        return ()
    mine = signature_of(analysis)
    sigs = [signature(r.text) for r in tail]
    previous = sigs[-1]
    threads: list[Thread] = []
    groups: tuple[
        tuple[ThreadKind, frozenset[str], Callable[[EntrySignature], frozenset[str]]], ...
    ]
    groups = (
        ("person", mine.people, lambda s: s.people),
        ("theme", mine.themes, lambda s: s.themes),
        ("feeling", mine.feelings, lambda s: s.feelings),
    )
    for kind, keys, field in groups:
        for key in sorted(keys):
            count = sum(1 for s in sigs if key in field(s))
            in_previous = key in field(previous)
            if count >= MIN_RECURRENCE or in_previous:
                threads.append(Thread(kind, key, count, len(tail), in_previous))
    order = {"person": 0, "theme": 1, "feeling": 2}
    threads.sort(key=lambda t: (-t.count, order[t.kind], t.key))
    return tuple(threads)


def theme_label(theme: str) -> str:
    """How a theme is said in a sentence ("the future", "being outdoors")."""
    return lexicon().theme_labels.get(theme, theme)
