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

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crdt.journal import Reflection

BM25_K1 = 1.2
BM25_B = 0.75
TAG_WEIGHT = 2  # a tag counts as this many occurrences of its word
MAX_QUERY_WORDS = 32
SNIPPET_CHARS = 72
STEM_CACHE_WORDS = 65_536  # a journal's vocabulary; each word is stemmed once

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class SearchQuery:
    """A parsed search: the words to rank by and the tags asked for."""

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


@functools.lru_cache(maxsize=STEM_CACHE_WORDS)
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


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _count(lower: str, key: str, word: str) -> int:
    """How many words of *lower* stem to *word*, looking only at those holding *key*."""
    count = 0
    at = lower.find(key)
    while at != -1:
        start, end = at, at + len(key)
        while start > 0 and _is_word_char(lower[start - 1]):
            start -= 1
        while end < len(lower) and _is_word_char(lower[end]):
            end += 1
        if stem(lower[start:end]) == word:
            count += 1
        at = lower.find(key, end)
    return count


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
    n = len(reflections)
    if n == 0:
        return []
    # A stem is in each word it comes from (but for the y of "worried" → "worry"):
    # str.find locates it, and only the words around what it finds are stemmed, so
    # the cost is a scan of the text in C, not a tokenization. Lengths are in words.
    keys = [(w, w[:-1] if w.endswith("y") and len(w) > 1 else w) for w in q.words]
    lengths: list[int] = []
    tfs: dict[str, dict[int, int]] = {w: {} for w in q.words}
    for i, r in enumerate(reflections):
        lower = r.text.lower()
        lengths.append(len(lower.split()) + TAG_WEIGHT * len(r.tags))
        tag_text = " ".join(r.tags) if r.tags else ""
        for word, key in keys:
            tf = _count(lower, key, word)
            if key in tag_text:
                tf += TAG_WEIGHT * _count(tag_text, key, word)
            if tf:
                tfs[word][i] = tf
    avgdl = sum(lengths) / n or 1.0
    wanted_tags = set(q.tags)
    scores: dict[int, float] = {}
    for word in q.words:
        having = tfs[word]
        if not having:
            continue
        idf = math.log(1 + (n - len(having) + 0.5) / (len(having) + 0.5))
        for i, tf in having.items():
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
