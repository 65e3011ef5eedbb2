"""The words a person at risk reads, instead of an ordinary mirrorback.

Two tiers (``detect``):

- **crisis** (clear risk): thanks them for writing it, quotes their words, says
  plainly that they do not have to carry this alone, names where help is right
  now, and asks one question — whether someone could be with them;
- **check-in** (possible risk): quotes what they wrote, then asks directly and
  kindly whether they are thinking of ending their life, hurting themselves, or
  whether they are safe — and gives the line where help is.

What these replies never do: advise, diagnose, argue, promise, hurry, or
decide for the person what they feel. They quote the person's own sentence,
so the reply is about what *they* wrote, not about a keyword. Deterministic:
the same entry always gets the same words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..analysis import Span
from .detect import Finding, assess
from .helplines import where_help_is
from .rules import Tier

CrisisCategory = Literal["self_harm", "harm_from_others"]
MAX_CRISIS_QUOTE_CHARS = 160
QUOTE_CONTEXT_CHARS = 60


@dataclass(frozen=True)
class CrisisSignal:
    """The strongest risk in an entry: its category and tier, and where it was written."""

    category: CrisisCategory
    tier: Tier
    kind: str  # passive, active, method, plan, preparation, self_harm, burden, hopeless,
    # violence, threat, unsafe, control; learned (the learned lexicon), model
    span: Span  # the words that matched, as written
    sentence: Span  # the sentence around them, as written

    @property
    def is_crisis(self) -> bool:
        return self.tier == "crisis"


def signal_of(text: str, finding: Finding) -> CrisisSignal:
    category: CrisisCategory = "self_harm" if finding.about == "self" else "harm_from_others"
    return CrisisSignal(
        category,
        finding.tier,
        finding.kind,
        Span(finding.start, finding.end, text[finding.start : finding.end]),
        Span(finding.sentence_start, finding.sentence_end,
             text[finding.sentence_start : finding.sentence_end]),
    )


def detect_crisis(text: str) -> CrisisSignal | None:
    """The strongest risk in *text* (a crisis before a check-in, the person's own
    risk before harm from others), or None."""
    top = assess(text).top
    return signal_of(text, top) if top is not None else None


def _quote(signal: CrisisSignal) -> str:
    """The person's sentence, or the words around the match when the sentence is long."""
    # the reply asks its own one question: the person's words are quoted without a
    # trailing question mark of theirs
    sentence = " ".join(signal.sentence.text.split()).strip(" \t\n,;:-–—").rstrip("?!.…")
    if 0 < len(sentence) <= MAX_CRISIS_QUOTE_CHARS:
        return sentence
    text = signal.sentence.text
    at = signal.span.start - signal.sentence.start
    start = max(0, at - QUOTE_CONTEXT_CHARS)
    end = min(len(text), at + len(signal.span.text) + QUOTE_CONTEXT_CHARS)
    while start > 0 and not text[start - 1].isspace():
        start += 1
    while end < len(text) and not text[end].isspace():
        end -= 1
    middle = " ".join(text[start:end].split())
    if not middle:
        middle = " ".join(signal.span.text.split())
    return f"{'…' if start > 0 else ''}{middle}{'…' if end < len(text) else ''}"


def crisis_reply(text: str, signal: CrisisSignal, country: str = "") -> str:
    """The reply for *signal* found in *text*, with the lines of *country* (an ISO
    code or a name; empty: the international directory). Paragraphs are separated
    by blank lines."""
    quote = _quote(signal)
    if signal.category == "harm_from_others":
        if signal.is_crisis:
            return "\n\n".join((
                f"Thank you for writing this down. You wrote “{quote}”, and that matters. "
                "No one has the right to hurt or threaten you, and what is happening is "
                "not yours to carry alone.",
                "If you are in danger right now, help is there — "
                f"{where_help_is(country, violence=True)}.",
                "Is there someone you trust who could be with you, or hear from you, "
                "right now?",
            ))
        return "\n\n".join((
            f"You wrote “{quote}”. That sounds frightening, and it matters.",
            "Are you safe right now, where you are and with the people around you?",
            "If you are not, or you are not sure, help is there — "
            f"{where_help_is(country, violence=True)}.",
        ))
    if signal.is_crisis:
        if signal.kind == "self_harm":
            feeling = (
                "It sounds like you are going through something very painful right now, "
                "and you do not have to go through it alone."
            )
        else:
            feeling = (
                "It sounds like you are carrying a great deal of pain right now, "
                "and you do not have to carry it alone."
            )
        return "\n\n".join((
            f"Thank you for writing this down. You wrote “{quote}”, and that matters. "
            + feeling,
            "If you might act on these thoughts, or you are in danger, help is there right "
            f"now — {where_help_is(country)}.",
            "Is there someone who could be with you, or hear from you, right now?",
        ))
    if signal.kind == "self_harm":
        question = (
            "Words like these sometimes come with wanting to hurt yourself. "
            "Are you hurting yourself, or thinking about it?"
        )
    elif signal.kind == "learned":  # the learned lexicon: words, not one clear statement
        question = (
            "Some of the words here are ones people use when they are thinking about "
            "ending their life. Are you having thoughts of ending your life, or is "
            "someone hurting you?"
        )
    else:
        question = (
            "Words like these sometimes come with thoughts of not wanting to be alive. "
            "Are you having thoughts of ending your life?"
        )
    # a model's signal quotes the sentence that reads most troubled, which may not say
    # much on its own: no comment on it, only the question
    lead = f"You wrote “{quote}”." if signal.kind == "model" else (
        f"You wrote “{quote}”. That sounds heavy to carry."
    )
    return "\n\n".join((
        lead,
        f"{question} Whatever the answer is, you can write it here, as it is.",
        f"If you are, or if it gets to be too much, help is there — {where_help_is(country)}.",
    ))
