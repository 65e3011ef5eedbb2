"""What reading an entry finds: the ``Analysis`` that ``text.analyze`` returns, and its parts.

Frozen dataclasses whose findings each carry ``Span``s (character offsets into
the text as given, and the words found there), so a caller can quote its
evidence — the mirrorback quotes the person's words, the extraction of the
engine issue stores them as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal


@dataclass(frozen=True)
class Span:
    """Characters ``text[start:end]`` of the entry, and what they say."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Token:
    text: str
    norm: str  # lower case, straight apostrophes
    start: int
    end: int
    sentence: int


@dataclass(frozen=True)
class Sentence:
    index: int
    span: Span
    is_question: bool


@dataclass(frozen=True)
class Feeling:
    """A feeling word or emoji, its family (``emotions.json``), and whether it is negated."""

    family: str
    span: Span
    sentence: int
    negation: Span | None = None  # the word that negates it ("not", "haven't"), if any

    @property
    def negated(self) -> bool:
        return self.negation is not None


@dataclass(frozen=True)
class Person:
    """Someone in the entry: a name ("Maya"), a role ("my boss"), or both ("my friend Sam").

    ``key`` identifies the person across entries: the lower-cased name, else
    ``"my <role>"``.
    """

    key: str
    name: str | None
    role: str | None
    theme: str | None
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class Theme:
    name: str
    spans: tuple[Span, ...]  # the words that point to it, in order


@dataclass(frozen=True)
class Keyphrase:
    """A run of content words, scored RAKE-style (degree over frequency)."""

    norm: str
    span: Span  # first occurrence
    count: int
    score: float


TensionKind = Literal["parts", "should_want", "want_but", "contrast"]
TENSION_PRIORITY: tuple[TensionKind, ...] = ("parts", "should_want", "want_but", "contrast")


@dataclass(frozen=True)
class Tension:
    """Two poles of the entry pulling apart: *left* and *right* in text order."""

    kind: TensionKind
    left: Span
    right: Span
    cue: Span


@dataclass(frozen=True)
class Analysis:
    text: str  # the text analysed (cut to MAX_ANALYSIS_CHARS)
    english: bool
    sentences: tuple[Sentence, ...]
    tokens: tuple[Token, ...]
    feelings: tuple[Feeling, ...]  # in text order
    people: tuple[Person, ...]  # in order of first mention
    themes: tuple[Theme, ...]  # most mentioned first
    keyphrases: tuple[Keyphrase, ...]  # best first
    tensions: tuple[Tension, ...]  # strongest kind first
    questions: tuple[Span, ...]  # questions the person asked themselves

    @cached_property
    def named_feelings(self) -> tuple[Feeling, ...]:
        """Feelings the person says they have (not negated ones)."""
        return tuple(f for f in self.feelings if not f.negated)

    def span(self, start: int, end: int) -> Span:
        return Span(start, end, self.text[start:end])
