"""The learned lexicon: words and word pairs weighted by how often they are in risk lines.

A rated lexicon in the manner of VADER's: ``learned.json`` lists terms (words as the
normaliser reads them) and adjacent pairs, each with a weight — the log-odds of a
line that contains it being a risk line, counted over the project's own labelled
sets (``tests/fixtures/safety/``) by ``build_lexicon.py``, a maintainer tool that is
never imported at runtime. No model, nothing downloaded: a table anyone can read.

It runs last (``detect``), only on an entry in which the rules and the scored layer
found nothing, and it can only add a **check-in**, never a crisis reply, and never
lower anything. Before it counts, the contexts the rest of the net knows are applied:
a sentence with a past, a laugh or a benign frame (media, a profession, a game,
cooking...), a question someone else asked or someone else's reported words is not
read; a word inside an idiom or a denial, after a negator, or in a clause about
someone else is not counted. A window (a sentence, or two short ones together) whose
surviving features sum past the threshold is a possible risk.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .normalize import CLAUSE_MARK, SENTENCE_MARK

MARKS = frozenset({SENTENCE_MARK, CLAUSE_MARK})
# besides auxiliaries, the words a negator reaches over to the word it denies
LEARNED_NEGATION_GAP = frozenset({"a", "an", "the", "any", "some", "my", "that", "so", "really",
                                  "even", "at", "all"})


class LexiconError(ValueError):
    """The shipped learned.json is damaged or does not match its digest."""


@dataclass(frozen=True)
class LearnedLexicon:
    """Weighted words and word pairs, and the sum that asks for a check-in."""

    weights: Mapping[str, float]  # a word, or two words joined by one space
    threshold: float
    sets: tuple[str, ...]  # the labelled sets it was built from
    digest: str

    def score(self, features: Iterable[str]) -> float:
        w = self.weights
        return sum(w.get(f, 0.0) for f in features)


def features(tokens: Sequence[str], kept: Sequence[bool] | None = None) -> set[str]:
    """The words and adjacent word pairs of *tokens* (marks left out, a pair not
    spanning one); with *kept*, only tokens kept, and pairs of two kept tokens."""
    out: set[str] = set()
    keep = kept if kept is not None else [True] * len(tokens)
    for tok, k in zip(tokens, keep, strict=True):
        if k and tok not in MARKS:
            out.add(tok)
    for (a, ka), (b, kb) in pairwise(zip(tokens, keep, strict=True)):
        if ka and kb and a not in MARKS and b not in MARKS:
            out.add(f"{a} {b}")
    return out


def compile_lexicon(raw: Mapping[str, Any]) -> LearnedLexicon:
    try:
        terms = raw["terms"]
        pairs = raw["pairs"]
        weights: dict[str, float] = {}
        for table, words in ((terms, 1), (pairs, 2)):
            for key, value in table.items():
                if len(key.split(" ")) != words or not isinstance(value, (int, float)):
                    raise LexiconError(f"bad entry {key!r}: {value!r}")
                weights[key] = float(value)
        return LearnedLexicon(weights, float(raw["threshold"]), tuple(raw["sets"]),
                       str(raw["digest"]))
    except (KeyError, TypeError) as exc:
        raise LexiconError(f"learned lexicon: {exc}") from None


def load(text: str) -> LearnedLexicon:
    return compile_lexicon(json.loads(text))
