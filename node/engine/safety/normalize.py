"""Writing as people type it, turned into a token stream the risk rules can read.

``normalize(text, vocabulary)`` returns a :class:`Normalized`: the tokens of the
text in lower case, one space apart, with ``|`` where a sentence ends and ``,``
where a clause breaks, and for every token the characters of the original text
it came from (so a match can be quoted as the person wrote it).

What is undone on the way, because people in pain rarely write carefully:

- case, curly quotes and apostrophes, and NFKC forms;
- digits inside words ("su1c1de", "k1ll");
- contractions with or without their apostrophe ("dont", "im", "wont" → "do
  not", "i am", "will not"), the short forms of chat ("wanna", "rn", "kms");
- dropped final g ("thinkin", "endin");
- letters held down ("diiiie");
- typos of the words the rules are built from ("sucidal", "myslef"), by
  Damerau–Levenshtein distance to that vocabulary, never changing a word that
  is itself English (``near_words.txt`` lists the real words within reach of
  the vocabulary, generated once from a dictionary).

Pure and deterministic; O(characters), plus a small dictionary lookup per token.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache

SENTENCE_MARK = "|"
CLAUSE_MARK = ","
MIN_FUZZY_CHARS = 4  # shorter words are too close to other words to be guessed at
MIN_TWO_EDIT_CHARS = 8  # words this long may carry two typos
MAX_REMEMBERED_WORDS = 50_000

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'", "“": '"', "”": '"'})
_LEET = str.maketrans({"1": "i", "3": "e", "0": "o", "4": "a", "@": "a", "$": "s", "5": "s"})
# words, punctuation that ends a sentence, punctuation that breaks a clause
_TOKEN_RE = re.compile(
    r"(?P<abbr>\b(?:[a-z]\.){2,}(?![a-z0-9]))|(?P<word>[a-z0-9@$]+(?:['\-][a-z0-9]+)*)|(?P<end>[.!?;…\n]+)|(?P<clause>[,:()\[\]—–\"]|\s-\s)"
)
_HELD_RE = re.compile(r"([a-z])\1{2,}")
# Words that only say how much or how sincerely, dropped from the stream so they never
# stand between the words of a phrase ("would be nice to", "want to die"): "I
# honestly want to die", "not actually suicidal". Never "so" or "just" (the rules read them).
FILLERS = frozenset({"really", "literally", "honestly", "genuinely", "truly", "actually",
                     "lowkey", "highkey", "ngl", "tbh", "legit", "fr", "deadass", "tbf"})

# Contractions and chat forms → their words. With or without apostrophes.
EXPANSIONS: Mapping[str, tuple[str, ...]] = {
    **{
        form: ("i", "am") for form in ("i'm", "im", "i'am")
    },
    "i've": ("i", "have"), "ive": ("i", "have"),
    "i'd": ("i", "would"), "i'll": ("i", "will"),
    "ain't": ("am", "not"), "aint": ("am", "not"),
    "can't": ("can", "not"), "cant": ("can", "not"), "cannot": ("can", "not"),
    "won't": ("will", "not"), "wont": ("will", "not"),
    "shan't": ("shall", "not"),
    "he's": ("he", "is"), "hes": ("he", "is"), "she's": ("she", "is"), "shes": ("she", "is"),
    "it's": ("it", "is"), "that's": ("that", "is"), "thats": ("that", "is"),
    "what's": ("what", "is"), "whats": ("what", "is"), "there's": ("there", "is"),
    "theres": ("there", "is"),

    "life's": ("life", "is"), "who's": ("who", "is"), "tonight's": ("tonight", "is"),
    "today's": ("today", "is"), "tomorrow's": ("tomorrow", "is"),
    "everything's": ("everything", "is"), "nothing's": ("nothing", "is"),
    "here's": ("here", "is"), "how's": ("how", "is"), "where's": ("where", "is"),
    "this's": ("this", "is"), "death's": ("death", "is"),
    "he'll": ("he", "will"), "she'll": ("she", "will"), "they'll": ("they", "will"),
    "you'll": ("you", "will"), "we'll": ("we", "will"), "it'll": ("it", "will"),
    "he'd": ("he", "would"), "she'd": ("she", "would"), "they'd": ("they", "would"),
    "we'd": ("we", "would"), "you'd": ("you", "would"), "it'd": ("it", "would"),
    "they're": ("they", "are"), "theyre": ("they", "are"), "you're": ("you", "are"),
    "youre": ("you", "are"), "we're": ("we", "are"),
    "they've": ("they", "have"), "we've": ("we", "have"), "you've": ("you", "have"),
    "wanna": ("want", "to"), "wana": ("want", "to"), "gonna": ("going", "to"),
    "gunna": ("going", "to"), "gotta": ("got", "to"), "tryna": ("trying", "to"),
    "kinda": ("kind", "of"), "sorta": ("sort", "of"), "outta": ("out", "of"),
    "lemme": ("let", "me"), "dunno": ("do", "not", "know"),
    "idk": ("i", "do", "not", "know"), "idc": ("i", "do", "not", "care"),
    "idgaf": ("i", "do", "not", "care"),
    "u": ("you",), "ya": ("you",), "ur": ("your",), "r": ("are",), "rn": ("right", "now"),
    "cuz": ("because",), "coz": ("because",), "bc": ("because",), "cos": ("because",),
    "tmrw": ("tomorrow",), "tmr": ("tomorrow",), "tmw": ("tomorrow",), "2moro": ("tomorrow",),
    "nite": ("night",), "ppl": ("people",), "ppl's": ("people",), "b4": ("before",),
    "w/o": ("without",), "bf": ("boyfriend",), "gf": ("girlfriend",),
    **{
        f"{base}{tail}": (base, "not")
        for base in ("do", "does", "did", "is", "was", "were", "are", "have", "has", "had",
                     "could", "would", "should", "must", "need", "might")
        for tail in ("n't", "nt")
    },
    "kms": ("kill", "myself"), "kil": ("kill",), "kiling": ("killing",), "lyfe": ("life",),
    "b": ("be",), "wud": ("would",), "wld": ("would",), "cud": ("could",), "shud": ("should",),
    "ded": ("dead",), "dye": ("dye",), "kys": ("kill", "yourself"),
    "unalive": ("kill",), "unalived": ("killed",), "unaliving": ("killing",),
    "sewerslide": ("suicide",), "sewerslided": ("suicide",), "suicided": ("suicide",),
    "selfharm": ("self", "harm"), "self-harm": ("self", "harm"),
    "selfharming": ("self", "harming"), "self-harming": ("self", "harming"),
    "self-harmed": ("self", "harmed"), "selfharmed": ("self", "harmed"),
    "od": ("overdose",), "od'd": ("overdosed",), "oded": ("overdosed",),
    "dieing": ("dying",), "meself": ("myself",), "myselff": ("myself",),
    "w": ("with",),
    "dnt": ("do", "not"), "cnt": ("can", "not"), "wnt": ("want",),
    "tho": ("though",), "thru": ("through",), "abt": ("about",), "smth": ("something",),
    "nothin": ("nothing",), "somethin": ("something",), "any-more": ("anymore",),
    "no-one": ("no", "one"), "noone": ("no", "one"),
    "every1": ("everyone",), "some1": ("someone",), "no1": ("no", "one"),
}
# "id", "ill" are also words: read as contractions only before a verb-like word
# ("ill finally do it", "id rather"; never "feel ill", "my id card").
CLAUSE_START_EXPANSIONS: Mapping[str, tuple[str, ...]] = {
    "id": ("i", "would"), "ill": ("i", "will"),
}
_CONTRACTION_FOLLOWERS = frozenset(
    "rather be just never really love like want kill end do go take jump die probably "
    "finally try not always".split()
)


@dataclass(frozen=True)
class Normalized:
    """The token stream: ``text`` is the tokens joined by single spaces, with a
    trailing space; ``spans[i]`` is where token ``i`` was in the original text."""

    tokens: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    text: str
    starts: tuple[int, ...]  # offset of each token in ``text``

    def token_at(self, offset: int) -> int:
        """The index of the token that starts at or before *offset* of ``text``."""
        lo, hi = 0, len(self.starts)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.starts[mid] <= offset:
                lo = mid + 1
            else:
                hi = mid
        return max(0, lo - 1)

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Characters of the original text behind ``text[start:end]``."""
        first = self.token_at(start)
        last = self.token_at(max(start, end - 1))
        return self.spans[first][0], self.spans[last][1]


# --------------------------------------------------------------------------- typos


def damerau_levenshtein(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance between *a* and *b*; *limit* + 1 once beyond it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


def allowed_edits(word: str) -> int:
    if len(word) < MIN_FUZZY_CHARS:
        return 0
    return 2 if len(word) >= MIN_TWO_EDIT_CHARS else 1


def _shared_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _deletes(word: str, depth: int) -> set[str]:
    out = {word}
    frontier = {word}
    for _ in range(depth):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        out |= frontier
    return out


@dataclass(frozen=True)
class Vocabulary:
    """The words the rules are built from, and how to find one behind a typo."""

    words: frozenset[str]
    english: frozenset[str]  # real words never "corrected" (near_words.txt and the vocabulary)
    by_delete: Mapping[str, tuple[str, ...]]
    # what correct() answered for a word already seen: a journal repeats its words
    memo: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def build(cls, words: Iterable[str], english: Iterable[str]) -> Vocabulary:
        vocab = frozenset(w for w in words if w.isalpha())
        index: dict[str, set[str]] = {}
        for w in vocab:
            for d in _deletes(w, allowed_edits(w)):
                index.setdefault(d, set()).add(w)
        return cls(
            vocab,
            frozenset(english) | vocab,
            {k: tuple(sorted(v)) for k, v in index.items()},
        )

    def correct(self, token: str) -> str | None:
        """The vocabulary word *token* is a typo of, if exactly one is closest."""
        if token in self.english or not token.isalpha() or len(token) < MIN_FUZZY_CHARS:
            return None
        if token in self.memo:
            return self.memo[token]
        if len(self.memo) >= MAX_REMEMBERED_WORDS:
            self.memo.clear()
        found = self._closest(token)
        self.memo[token] = found
        return found

    def _closest(self, token: str) -> str | None:
        candidates: set[str] = set()
        for d in _deletes(token, 2 if len(token) >= MIN_TWO_EDIT_CHARS - 1 else 1):
            candidates.update(self.by_delete.get(d, ()))
        best: list[tuple[int, str]] = []
        for word in candidates:
            limit = allowed_edits(word)
            # four letters: only two letters swapped ("wnat"), anything else is another word
            if len(word) == MIN_FUZZY_CHARS and (
                sorted(word) != sorted(token) or len(token) != len(word)
            ):
                continue
            # the first letter is rarely the one mistyped; keeps "bill" from "kill"
            if word[0] != token[0] and word[:2] != token[1::-1]:
                continue
            dist = damerau_levenshtein(token, word, limit)
            if dist <= limit:
                best.append((dist, word))
        if not best:
            return None
        # closest first; then the same length (a wrong letter rather than a missing
        # one), then the longest shared beginning
        ranked = sorted(
            (dist, abs(len(word) - len(token)), -_shared_prefix(word, token), word)
            for dist, word in best
        )
        if len(ranked) > 1 and ranked[0][:3] == ranked[1][:3]:
            return None  # two words equally close: do not guess
        return ranked[0][3]


# --------------------------------------------------------------------------- tokens


def _deleet(word: str) -> str:
    if any(c.isdigit() or c in "@$" for c in word) and any(c.isalpha() for c in word):
        if word in EXPANSIONS:
            return word
        return word.translate(_LEET)
    return word


def _unhold(word: str, vocab: Vocabulary) -> str:
    """"diiiie" → "die", "sooo" → "soo" → "so": runs of three or more letters shortened."""
    if not _HELD_RE.search(word):
        return word
    once = _HELD_RE.sub(r"\1", word)
    twice = _HELD_RE.sub(r"\1\1", word)
    for candidate in (twice, once):
        if candidate in vocab.english or candidate in EXPANSIONS:
            return candidate
    return once


def _fix_word(word: str, vocab: Vocabulary) -> str:
    word = _unhold(_deleet(word), vocab)
    if word in EXPANSIONS or word in vocab.english:
        return word
    if word.endswith("in") and word + "g" in vocab.english:
        return word + "g"  # "thinkin", "endin"
    fixed = vocab.correct(word)
    return fixed if fixed is not None else word


def normalize(text: str, vocab: Vocabulary) -> Normalized:
    """The token stream of *text* (see the module docstring)."""
    flat = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    if len(flat) != len(text):
        flat = text.translate(_APOSTROPHES).lower()  # keep offsets when NFKC changes length
    tokens: list[str] = []
    spans: list[tuple[int, int]] = []

    def push(tok: str, span: tuple[int, int]) -> None:
        if tok in (SENTENCE_MARK, CLAUSE_MARK):
            if not tokens or tokens[-1] == SENTENCE_MARK:
                return
            if tokens[-1] == CLAUSE_MARK:
                tokens.pop()
                spans.pop()
        tokens.append(tok)
        spans.append(span)

    filler_at: int | None = None  # where dropped fillers began, for the next word's span
    for m in _TOKEN_RE.finditer(flat):
        span = (m.start(), m.end())
        if m.group("end") is not None:
            push(SENTENCE_MARK, span)
            filler_at = None
            continue
        if m.group("clause") is not None:
            push(CLAUSE_MARK, span)
            filler_at = None
            continue
        if filler_at is not None:  # "honestly i wish...": the sentence still begins there
            span = (filler_at, span[1])
            filler_at = None
        if m.group("abbr") is not None:  # "o.d.", "k.m.s.": a chat form spelt with dots
            joined = m.group("abbr").replace(".", "")
            if joined in EXPANSIONS:
                for part in EXPANSIONS[joined]:
                    push(part, span)
            else:  # "e.g.", "a.m.": a word, then the sentence goes on
                push(joined, span)
            continue
        raw = m.group("word").strip("'-")
        if not raw:
            continue
        if raw in FILLERS:
            filler_at = span[0]
            continue
        word = _fix_word(raw, vocab)
        if word.endswith("'s") and word not in EXPANSIONS:
            base = _fix_word(word[:-2], vocab)
            push(base, span)
            push("'s", span)
            continue
        parts = EXPANSIONS.get(word)
        # "ill", "id" are "I'll", "I'd" before a verb, wherever they stand ("this
        # weekend ill finally do it"); "feel ill" is followed by no such word
        if parts is None and word in CLAUSE_START_EXPANSIONS:
            following = flat[m.end() : m.end() + 12].split()
            if following and following[0].strip(".,!?") in _CONTRACTION_FOLLOWERS:
                parts = CLAUSE_START_EXPANSIONS[word]
        for part in parts or (word,):
            push(part, span)
    while tokens and tokens[-1] in (SENTENCE_MARK, CLAUSE_MARK):
        tokens.pop()
        spans.pop()
    starts: list[int] = []
    at = 0
    for tok in tokens:
        starts.append(at)
        at += len(tok) + 1
    return Normalized(tuple(tokens), tuple(spans), " ".join(tokens) + " ", tuple(starts))


@cache
def english_near_words(raw: str) -> frozenset[str]:
    return frozenset(
        line.strip() for line in raw.splitlines() if line.strip() and not line.startswith("#")
    )
