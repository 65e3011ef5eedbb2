"""The offline engine: a mirrorback made of the person's own words, no model needed.

``compose_mirrorback(text, past)`` is pure and synchronous: crisis language
first (``safety``), then ``text.analyze`` reads the entry and ``compose``
writes the reply — the entry's emotional centre in its own words, the feelings
it names (only those, never negated ones), its people and themes, at most one
true claim about the past reflections, and one open question grounded in its
words.

House rules, checked by the tests over a corpus: no advice, no diagnosis, no
flattery, no canned reply. Wording varies between many equivalent templates:
those the recent replies (the mirrorbacks stored with *past*) did not use,
then a hash of the text (never global randomness), so the same entry after the
same past always gets the same mirrorback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from crdt.journal import Reflection

from .base import MirrorbackRequest
from .compose import compose
from .recurrence import PAST_WINDOW
from .safety import crisis_reply, detect_crisis
from .text import analyze


def mirrorback_paragraphs(
    text: str, past: Sequence[Reflection] = (), *, country: str = ""
) -> list[str]:
    """The mirrorback for *text* as paragraphs (observation, a claim about the past,
    question); *past* oldest first, with their stored mirrorbacks. Risk of harm
    (``safety``) gets the crisis reply or a check-in instead, with the crisis lines
    of *country*."""
    signal = detect_crisis(text)
    if signal is not None:
        return crisis_reply(text, signal, country).split("\n\n")
    return compose(analyze(text), past)


def compose_mirrorback(text: str, past: Sequence[Reflection] = (), *, country: str = "") -> str:
    """The mirrorback for *text*, given *past* reflections oldest first. Pure, deterministic."""
    return "\n\n".join(mirrorback_paragraphs(text, past, country=country))


class OfflineEngine:
    """The built-in engine: no model, no network, always available."""

    name = "offline"
    model = "offline-v1"

    def __init__(self, *, country: str = "") -> None:
        self.country = country  # whose crisis lines a crisis reply names

    async def stream(self, request: MirrorbackRequest) -> AsyncIterator[str]:
        rid = request.reflection.id
        # only the recent tail is ever read; never walk a long journal here
        past = [r for r in request.past[-(PAST_WINDOW + 1) :] if r.id != rid]
        paragraphs = mirrorback_paragraphs(request.reflection.text, past, country=self.country)
        for i, paragraph in enumerate(paragraphs):
            yield paragraph if i == 0 else "\n\n" + paragraph
