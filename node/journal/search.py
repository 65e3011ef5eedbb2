"""Full-text search over the journal: ranked by Okapi BM25, with the matches marked.

The index is built in memory from the reflections the caller read from the
store, for one search, and dropped after it: search writes nothing anywhere,
so a search of an encrypted home leaves no plaintext beside it (no index file,
no cache).

Words are matched case-insensitively, accents kept, with a crude English stem
("worried" finds "worry"; the rule of :func:`node.engine.extract.stem`, which is
not imported to keep this module light). A query word that starts with ``#``
asks for that tag. Tags count as words of their reflection, with a higher
weight, so "work" finds a reflection tagged #work whose text never says it.
Every reflection with at least one query word (or tag) is found; more of them,
rarer ones, in a shorter text rank higher.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crdt.journal import Reflection

BM25_K1 = 1.2
BM25_B = 0.75
TAG_WEIGHT = 2  # a tag counts as this many occurrences of its word
MAX_QUERY_WORDS = 32
SNIPPET_CHARS = 72

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class SearchQuery:
    words: tuple[str, ...]  # stems
    tags: tuple[str, ...]  # asked with #

    @property
    def empty(self) -> bool:
        return not self.words and not self.tags


@dataclass(frozen=True)
class Hit:
    """One reflection found: its score and where the query's words are in its text."""

    reflection: Reflection
    score: float
    matches: tuple[tuple[int, int], ...]  # (start, end) character offsets in the text
    matched_tags: tuple[str, ...]


def stem(word: str) -> str:
    if word.endswith(("ss", "us", "is")):
        return word
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)] + repl
    return word


def _tokens(text: str) -> Iterable[tuple[str, int, int]]:
    for m in _WORD.finditer(text):
        yield stem(m.group().lower()), m.start(), m.end()


def parse_query(text: str) -> SearchQuery:
    words: list[str] = []
    tags: list[str] = []
    for raw in text.split()[:MAX_QUERY_WORDS]:
        if raw.startswith("#") and len(raw) > 1:
            tag = raw.lstrip("#").lower().rstrip(".,;:!?")
            if tag and tag not in tags:
                tags.append(tag)
            continue
        for word, _, _ in _tokens(raw):
            if word not in words:
                words.append(word)
    return SearchQuery(tuple(words), tuple(tags))


def search(reflections: Sequence[Reflection], query: str | SearchQuery,
           *, limit: int | None = None) -> list[Hit]:
    """The reflections that match *query*, best first (ties: newest first)."""
    q = parse_query(query) if isinstance(query, str) else query
    if q.empty:
        return []
    docs: list[Counter[str]] = []
    for r in reflections:
        terms = Counter(word for word, _, _ in _tokens(r.text))
        for tag in r.tags:
            for word, _, _ in _tokens(tag):
                terms[word] += TAG_WEIGHT
        docs.append(terms)
    n = len(docs)
    if n == 0:
        return []
    lengths = [sum(d.values()) for d in docs]
    avgdl = sum(lengths) / n or 1.0
    wanted_tags = set(q.tags)
    scores: dict[int, float] = {}
    for word in q.words:
        having = [i for i, d in enumerate(docs) if word in d]
        if not having:
            continue
        idf = math.log(1 + (n - len(having) + 0.5) / (len(having) + 0.5))
        for i in having:
            tf = docs[i][word]
            norm = tf + BM25_K1 * (1 - BM25_B + BM25_B * lengths[i] / avgdl)
            scores[i] = scores.get(i, 0.0) + idf * tf * (BM25_K1 + 1) / norm
    if wanted_tags:
        tagged = [i for i, r in enumerate(reflections) if wanted_tags & set(r.tags)]
        idf = math.log(1 + (n - len(tagged) + 0.5) / (len(tagged) + 0.5))
        for i in tagged:
            scores[i] = scores.get(i, 0.0) + idf * len(wanted_tags & set(reflections[i].tags))
    ranked = sorted(scores, key=lambda i: (-scores[i], -reflections[i].created_at.timestamp(),
                                           reflections[i].id))
    if limit is not None:
        ranked = ranked[:limit]
    words = set(q.words)
    return [
        Hit(
            reflection=reflections[i],
            score=round(scores[i], 4),
            matches=tuple((a, b) for word, a, b in _tokens(reflections[i].text) if word in words),
            matched_tags=tuple(t for t in reflections[i].tags
                               if t in wanted_tags or any(w in words for w, _, _ in _tokens(t))),
        )
        for i in ranked
    ]


def snippet(text: str, matches: Sequence[tuple[int, int]], width: int = SNIPPET_CHARS
            ) -> tuple[str, tuple[tuple[int, int], ...]]:
    """A window of *text* around its first match, on one line, at most *width*
    characters, and the matches inside it as offsets into the window."""
    flat = text.replace("\n", " ").replace("\t", " ")
    if len(flat) <= width:
        return flat, tuple(matches)
    first = matches[0][0] if matches else 0
    start = max(0, min(first - width // 4, len(flat) - width))
    if start > 0:  # begin at a word
        space = flat.find(" ", start, first)
        start = space + 1 if space != -1 else start
    end = min(len(flat), start + width - (1 if start > 0 else 0))
    if end < len(flat):
        end -= 1  # room for the … that says more follows
    window = flat[start:end]
    prefix, suffix = ("…" if start > 0 else ""), ("…" if end < len(flat) else "")
    shift = len(prefix) - start
    inside = tuple((a + shift, b + shift) for a, b in matches if a >= start and b <= end)
    return prefix + window + suffix, inside


def match_spans(text: str, query: str | SearchQuery) -> tuple[tuple[int, int], ...]:
    """Where the words of *query* are in *text* (for text shown after cleaning)."""
    q = parse_query(query) if isinstance(query, str) else query
    words = set(q.words)
    return tuple((a, b) for word, a, b in _tokens(text) if word in words)
