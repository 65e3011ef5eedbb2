"""Crisis language: a first offline safety net, run before any mirrorback is written.

``detect_crisis(text)`` looks for clear self-harm or suicide language, and for
harm from others — being hit, threatened, abused, not safe at home — (the
phrases in ``data/crisis.json``); self-harm is checked first. ``crisis_reply``
is what the person gets instead of an ordinary mirrorback: caring, plain, with
where immediate help is, never advice, never a diagnosis, never nothing. Every
engine runs this first, before any model is called (node/llm/engine.py), so it
lives apart from the offline composer.

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

from .analysis import Span
from .lexicon import lexicon

CrisisCategory = Literal["self_harm", "harm_from_others"]
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
def _crisis_re(category: CrisisCategory = "self_harm") -> re.Pattern[str]:
    lex = lexicon()
    source = lex.crisis_self_harm if category == "self_harm" else lex.crisis_harm_from_others
    phrases = sorted(set(source), key=len, reverse=True)
    body = "|".join(_phrase_pattern(p) for p in phrases) or r"(?!x)x"
    return re.compile(rf"(?<![\w'’])(?:{body})(?![\w'’])", re.IGNORECASE)


def detect_crisis(text: str) -> CrisisSignal | None:
    """The first clear self-harm or suicide phrase in *text*, else the first phrase
    of harm from others, if any."""
    lex = lexicon()
    category: CrisisCategory
    for category in ("self_harm", "harm_from_others"):
        for m in _crisis_re(category).finditer(text):
            after = " ".join(text[m.end() : m.end() + EXCEPTION_LOOKAHEAD_CHARS].lower().split())
            if any(after.startswith(e) for e in lex.crisis_exceptions):
                continue
            return CrisisSignal(category, Span(m.start(), m.end(), m.group()))
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
    if signal.category == "harm_from_others":
        return (
            f"Thank you for writing this down. You wrote “{quote}”, and that matters. "
            "No one has the right to hurt or threaten you, and what happened is not "
            "yours to carry alone.\n\n"
            f"{lexicon().crisis_harm_resources}\n\n"
            "Is there someone you trust who could be with you, or hear from you, right now?"
        )
    return (
        f"Thank you for writing this down. You wrote “{quote}”, and that matters. "
        "It sounds like you are carrying a great deal of pain right now, "
        "and you do not have to carry it alone.\n\n"
        f"{lexicon().crisis_resources}\n\n"
        "Is there someone who could be with you, or hear from you, right now?"
    )
