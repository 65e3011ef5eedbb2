"""Crisis language: a first offline safety net, run before any mirrorback is written.

``detect_crisis(text)`` looks for clear self-harm or suicide language (the
phrases in ``data/crisis.json``); ``crisis_reply`` is what the person gets
instead of an ordinary mirrorback: caring, plain, with where immediate help is,
never advice, never a diagnosis, never nothing. Every engine runs this first
(the LLM engines of the engine issue too), so it lives apart from the offline
composer.

Matching is deliberately phrase-based: figures of speech ("this deadline is
killing me", "I could kill for a coffee") carry no listed phrase. A phrase
matches whole words, case-insensitively, with optional apostrophes and any
whitespace between words; a match immediately followed by one of the listed
exceptions ("die laughing") is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from .lexicon import lexicon
from .text import Span

CrisisCategory = Literal["self_harm"]
EXCEPTION_LOOKAHEAD_CHARS = 40
MAX_CRISIS_QUOTE_CHARS = 160


@dataclass(frozen=True)
class CrisisSignal:
    category: CrisisCategory
    span: Span  # the words that matched, as written


def _phrase_pattern(phrase: str) -> str:
    parts = []
    for word in phrase.lower().split():
        # an apostrophe may be typed straight, curly or not at all
        parts.append("['’]?".join(re.escape(piece) for piece in word.replace("’", "'").split("'")))
    return r"\s+".join(parts)


@cache
def _crisis_re() -> re.Pattern[str]:
    phrases = sorted(set(lexicon().crisis_self_harm), key=len, reverse=True)
    body = "|".join(_phrase_pattern(p) for p in phrases)
    return re.compile(rf"(?<![\w'’])(?:{body})(?![\w'’])", re.IGNORECASE)


def detect_crisis(text: str) -> CrisisSignal | None:
    """The first clear self-harm or suicide phrase in *text*, if any."""
    lex = lexicon()
    for m in _crisis_re().finditer(text):
        after = " ".join(text[m.end() : m.end() + EXCEPTION_LOOKAHEAD_CHARS].lower().split())
        if any(after.startswith(e) for e in lex.crisis_exceptions):
            continue
        return CrisisSignal("self_harm", Span(m.start(), m.end(), m.group()))
    return None


def _sentence_around(text: str, span: Span) -> str:
    start = max(text.rfind(c, 0, span.start) for c in ".!?\n") + 1
    ends = [i for i in (text.find(c, span.end) for c in ".!?\n") if i >= 0]
    end = min(ends) if ends else len(text)
    quote = " ".join(text[start:end].split())
    if len(quote) > MAX_CRISIS_QUOTE_CHARS:
        quote = " ".join(text[span.start : span.end].split())
    return quote


def crisis_reply(text: str, signal: CrisisSignal) -> str:
    """A caring reply that names where immediate help is. Deterministic."""
    quote = _sentence_around(text, signal.span)
    return (
        f"Thank you for writing this down. You wrote “{quote}”, and that matters. "
        "It sounds like you are carrying a great deal of pain right now, "
        "and you do not have to carry it alone.\n\n"
        f"{lexicon().crisis_resources}\n\n"
        "Is there someone who could be with you, or hear from you, right now?"
    )
