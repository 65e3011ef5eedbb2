"""Phrase cues with word stems: the matcher behind tension poles and loop steps.

A cue is a lower-case phrase; a word ending in ``*`` matches any word it starts
(``resent*`` matches "resent", "resented", "resentful"). ``CueIndex.match_at``
finds the longest cue starting at a token, looking up its first word (exact,
or by its first ``STEM_KEY_CHARS`` letters for stems), so a text of n words
costs O(n) lookups. Pure; built once per data file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .lexicon import phrase_tokens

STEM_KEY_CHARS = 3  # a stem cue must give at least this many letters before its *


def _word_matches(pattern: str, norm: str) -> bool:
    if pattern.endswith("*"):
        return norm.startswith(pattern[:-1])
    return norm == pattern


@dataclass(frozen=True)
class Cue:
    words: tuple[str, ...]  # a word may end in * (a stem)
    value: str
    exact: bool  # no stems: a plain comparison of token tuples will do


def _cue_words(phrase: str) -> tuple[str, ...]:
    out: list[str] = []
    for raw in phrase.lower().replace("’", "'").split():
        stem = raw.endswith("*")
        toks = phrase_tokens(raw.rstrip("*"))
        if not toks:
            continue
        out += list(toks[:-1])
        out.append(toks[-1] + "*" if stem else toks[-1])
    return tuple(out)


class CueIndex:
    """Cues grouped by first word (exact) or by its stem's first letters; longest first."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        exact: dict[str, dict[tuple[str, ...], str]] = {}
        stems: dict[str, dict[tuple[str, ...], str]] = {}
        for phrase, value in pairs:
            words = _cue_words(phrase)
            if not words:
                continue
            first = words[0]
            if first.endswith("*"):
                if len(first) - 1 < STEM_KEY_CHARS:
                    raise ValueError(f"stem cue too short: {phrase!r}")
                stems.setdefault(first[:STEM_KEY_CHARS], {}).setdefault(words, value)
            else:
                exact.setdefault(first, {}).setdefault(words, value)

        def ordered(group: dict[tuple[str, ...], str]) -> tuple[Cue, ...]:
            return tuple(Cue(w, v, not any(x.endswith("*") for x in w))
                         for w, v in sorted(group.items(), key=lambda kv: -len(kv[0])))

        self._exact = {k: ordered(v) for k, v in exact.items()}
        self._stems = {k: ordered(v) for k, v in stems.items()}

    def match_at(self, norms: Sequence[str], i: int) -> tuple[int, str] | None:
        """The longest cue starting at token *i*: (its length in tokens, its value)."""
        best: tuple[int, str] | None = None
        word = norms[i]
        size = len(norms)
        for group in (self._exact.get(word, ()), self._stems.get(word[:STEM_KEY_CHARS], ())):
            for cue in group:
                n = len(cue.words)
                if best is not None and n <= best[0]:
                    break
                if i + n > size:
                    continue
                if cue.exact:
                    hit = n == 1 or tuple(norms[i : i + n]) == cue.words
                else:
                    hit = all(_word_matches(p, norms[i + k]) for k, p in enumerate(cue.words))
                if hit:
                    best = (n, cue.value)
                    break
        return best

    def find_all(self, norms: Sequence[str]) -> list[tuple[int, int, str]]:
        """Every non-overlapping cue, left to right: (first token, length, value)."""
        out: list[tuple[int, int, str]] = []
        i = 0
        while i < len(norms):
            found = self.match_at(norms, i)
            if found is None:
                i += 1
                continue
            out.append((i, found[0], found[1]))
            i += found[0]
        return out
