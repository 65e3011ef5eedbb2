"""Related past reflections: Okapi BM25 over the index's terms, offline.

The index is built once from the engine's index entries (``Extraction.terms``)
and grown one reflection at a time; a query touches only the postings of its
own terms, so its cost depends on those terms, not on the journal's size.
Findings shared with the query (themes, people, tensions) add a small bonus,
so "the same tension in other words" still ranks.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from .extract import Extraction

BM25_K1 = 1.2
BM25_B = 0.75
SHARED_FINDING_BONUS = 0.8
MAX_QUERY_TERMS = 64
FINDING_KINDS = ("theme", "person", "tension", "value", "belief")


@dataclass(frozen=True)
class Related:
    rid: str
    score: float
    shared: tuple[str, ...]  # terms and findings both have, best first


@dataclass
class RelatedIndex:
    """Postings term → [(doc, tf)], plus each document's findings."""

    ids: list[str] = field(default_factory=list)
    private: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    findings: list[frozenset[str]] = field(default_factory=list)
    postings: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    total_length: int = 0

    @classmethod
    def build(cls, extractions: Iterable[Extraction]) -> RelatedIndex:
        index = cls()
        for x in extractions:
            index.add(x)
        return index

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, x: Extraction) -> None:
        if x.rid in self.positions:
            return
        doc = len(self.ids)
        self.positions[x.rid] = doc
        self.ids.append(x.rid)
        self.private.append(x.private)
        self.lengths.append(len(x.terms))
        self.findings.append(_findings(x))
        self.total_length += len(x.terms)
        for term, tf in Counter(x.terms).items():
            self.postings.setdefault(term, []).append((doc, tf))

    def query(
        self, x: Extraction, *, limit: int = 5, include_private: bool = True
    ) -> list[Related]:
        """The *limit* best past reflections for *x* (never *x* itself)."""
        n = len(self.ids)
        if n == 0:
            return []
        avgdl = self.total_length / n or 1.0
        scores: dict[int, float] = {}
        matched: dict[int, list[tuple[float, str]]] = {}
        for term in list(dict.fromkeys(x.terms))[:MAX_QUERY_TERMS]:
            posting = self.postings.get(term)
            if not posting:
                continue
            idf = math.log(1 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for doc, tf in posting:
                norm = tf + BM25_K1 * (1 - BM25_B + BM25_B * self.lengths[doc] / avgdl)
                gain = idf * tf * (BM25_K1 + 1) / norm
                scores[doc] = scores.get(doc, 0.0) + gain
                matched.setdefault(doc, []).append((gain, term))
        mine = _findings(x)
        if mine:
            for doc in list(scores):
                common = self.findings[doc] & mine
                if common:
                    scores[doc] += SHARED_FINDING_BONUS * len(common)
                    matched[doc] += [(SHARED_FINDING_BONUS, f) for f in sorted(common)]
        own = self.positions.get(x.rid)
        ranked = sorted(
            (
                (score, doc)
                for doc, score in scores.items()
                if doc != own and (include_private or not self.private[doc])
            ),
            key=lambda p: (-p[0], self.ids[p[1]]),
        )[:limit]
        return [
            Related(
                self.ids[doc],
                round(score, 3),
                tuple(t for _, t in sorted(matched[doc], key=lambda m: -m[0])[:6]),
            )
            for score, doc in ranked
        ]


def _findings(x: Extraction) -> frozenset[str]:
    return frozenset(i.node_id for i in x.items if i.kind in FINDING_KINDS)
