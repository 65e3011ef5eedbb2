"""Inline ``#tags``: words of the text that are tags too, and a tag list with counts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from crdt.journal import MAX_TAG_CHARS, Reflection

# A # that starts a word (not "C#", "page#anchor", "&#39;", "##"), then a letter,
# then letters, digits, _ or -: "#work", "#self-care", "#été". "#1" is a number.
_INLINE_TAG = re.compile(r"(?<![\w#&/])#([^\W\d_][\w-]*)")


def inline_tags(text: str) -> tuple[str, ...]:
    """The ``#tags`` written in *text*, lower case, in order, each once. A tag
    longer than a tag may be is left as text."""
    seen: list[str] = []
    for m in _INLINE_TAG.finditer(text):
        tag = m.group(1).rstrip("-_").lower()
        if tag and len(tag) <= MAX_TAG_CHARS and tag not in seen:
            seen.append(tag)
    return tuple(seen)


def with_inline_tags(tags: Iterable[str], text: str) -> tuple[str, ...]:
    """*tags* followed by the inline tags of *text* they lack."""
    given = [t.strip().lstrip("#").strip().lower() for t in tags]
    given = [t for t in given if t]
    return tuple(dict.fromkeys([*given, *inline_tags(text)]))


@dataclass(frozen=True)
class TagCount:
    """One tag and how many reflections carry it."""

    tag: str
    count: int


def tag_counts(reflections: Iterable[Reflection]) -> list[TagCount]:
    """Each tag and how many reflections carry it: most used first, then by name."""
    counts: Counter[str] = Counter()
    for r in reflections:
        counts.update(set(r.tags))
    return [TagCount(t, n) for t, n in sorted(counts.items(), key=lambda p: (-p[1], p[0]))]
