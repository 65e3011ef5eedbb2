"""The sentences the offline engine may say, and which one it says next.

Every sentence of an offline mirrorback comes from a :class:`Template` of one
*slot* (the opening, the feelings, the people, the closing question …). A
template is recognised again in a sentence of a past mirrorback (its fixed
words, in order), so the :class:`Chooser` knows which templates
the last ``VARIETY_WINDOW`` replies used, and picks one that none of them did —
else the one used longest ago. Among the fresh ones a hash of the entry
decides, never global randomness: the same entry after the same past always
gets the same reply.

House rules for every template (the tests scan for them): no advice, no
imperative, no diagnosis, no praise; only the closing-question slots end in a
question mark.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

VARIETY_WINDOW = 10  # past replies whose templates are avoided

_FIELD_RE = re.compile(r"\{(\w+)\}")
USED_CACHE_REPLIES = 256

SLOTS: dict[str, tuple[str, ...]] = {
    "opening": (
        "You wrote {q}.",
        "In your words: {q}.",
        "{q} — you wrote that.",
        "One line carries the most feeling here: {q}.",
        "You put it this way: {q}.",
        "The words that stand out: {q}.",
        "{q} is how you put it.",
        "At the centre of this entry, you wrote {q}.",
        "Among everything here, this line: {q}.",
        "This is the line that holds the weight: {q}.",
        "What you wrote, in your own words: {q}.",
        "Your entry turns on this: {q}.",
        "There is this, in your words: {q}.",
    ),
    "feeling": (
        "The feeling word you used is {f}.",
        "You named a feeling: {f}.",
        "{f} is the word you chose for it.",
        "The feeling, in your word: {f}.",
        "You called it {f}.",
        "{f} — that is your word for it.",
        "Your word for the feeling is {f}.",
        "You reached for the word {f}.",
        "The word {f} is in it.",
        "You wrote the word {f}.",
        "Among your words: {f}.",
        "You let {f} onto the page.",
    ),
    "feelings": (
        "The feelings you named: {fs}.",
        "You named {fs}.",
        "{fs} — those are your words for it.",
        "Feelings in your own words: {fs}.",
        "Your words for what you feel: {fs}.",
        "Several feelings are in it: {fs}.",
        "You reached for {fs}.",
        "The feeling words here are {fs}.",
        "{fs} all sit in this entry.",
        "You put names to it: {fs}.",
        "Your feelings, as you named them: {fs}.",
    ),
    "denied": (
        "You also wrote {neg}.",
        "And you wrote {neg}.",
        "{neg}, you also wrote.",
        "There is also {neg}.",
        "You said {neg} as well.",
        "Next to that: {neg}.",
    ),
    "people": (
        "You mention {who}.",
        "{Who} {be} part of this.",
        "{Who} {appear} here.",
        "{Who} {be} in this one.",
        "This one has {who} in it.",
        "You write about {who}.",
        "{Who} {be} in what you wrote.",
        "There is {who} in this entry.",
        "{Who} {come} into it.",
        "You bring {who} into it.",
        "{Who} {be} with you in this.",
    ),
    "themes": (
        "It touches on {labels}.",
        "Through it runs {labels}.",
        "It circles {labels}.",
        "There is {labels} in it.",
        "It has {labels} in it.",
        "Part of it is {labels}.",
        "It brushes against {labels}.",
        "It is partly about {labels}.",
        "You write around {labels}.",
        "In the background: {labels}.",
        "It reaches into {labels}.",
    ),
    "own_question": (
        "You asked yourself {q}.",
        "You asked {q}.",
        "There is a question in it: {q}.",
        "You put a question to yourself: {q}.",
        "A question sits in it: {q}.",
        "You wondered {q}.",
    ),
    "q_tension": (
        "What is it like to hold both {l} and {r}?",
        "When {l} and {r} sit side by side, what do you notice?",
        "Which pulls harder right now, {l} or {r}?",
        "How do {l} and {r} live together in you?",
        "What happens in you when {l} meets {r}?",
        "What does each of them, {l} and {r}, ask of you?",
        "Where do you feel {l} and {r} pulling?",
        "What is it like to be between {l} and {r}?",
    ),
    "q_own": (
        "What comes up when you stay with that question?",
        "What would your first answer to it be, today?",
        "If you answered it honestly, what would you say?",
        "What makes that question come back?",
        "What part of you is asking it?",
        "What would change if you had an answer?",
    ),
    "q_feeling": (
        "What sits underneath {f} for you right now?",
        "Where do you notice {f} most?",
        "When {f} is there, what else is there with it?",
        "How long has {f} been with you?",
        "What does {f} feel like in your body?",
        "What is {f} about, underneath?",
        "What would {f} say, if it could speak?",
        "When did {f} start, this time?",
        "What is closest to {f} for you right now?",
        "What does {f} know that you have not said yet?",
    ),
    "q_centre": (
        "What is underneath {h}?",
        "What stands out to you when you read {h} back?",
        "What would you add to {h}?",
        "What is most true in {h} for you?",
        "What do you notice, reading {h} again?",
        "What is it like to have written {h}?",
        "What else lives in {h}?",
        "What is {h} about, for you?",
    ),
    "q_person": (
        "What is it about {who} that stays with you here?",
        "What {does} {who} bring up in you?",
        "What would you want {who} to know?",
        "What do you feel when you think of {who}?",
        "What place {does} {who} have in this for you?",
        "What is unsaid between you and {who}?",
    ),
    "q_theme": (
        "What does {label} mean to you right now?",
        "What place does {label} have in your days right now?",
        "What is {label} asking of you these days?",
        "What is your relationship with {label} right now?",
        "What would you want {label} to look like?",
    ),
    "q_open": (
        "What else is there, besides {q}?",
        "What is left unsaid next to {q}?",
    ),
    "q_plain": (
        "What would you put into words, if you could?",
        "What is left unsaid here?",
        "What would you want to remember about this?",
        "What is here that has no words yet?",
    ),
}


@dataclass(frozen=True)
class Template:
    id: str  # "<slot>.<n>"
    slot: str
    text: str
    chunks: tuple[str, ...]  # its fixed words, between the placeholders

    def fill(self, values: Mapping[str, str]) -> str:
        return self.text.format_map(dict(values))

    def said_in(self, sentence: str) -> bool:
        """Whether *sentence* (of a written reply) reads as this template: its fixed
        words in order, the first at its start, the last at its end."""
        chunks = self.chunks
        if not chunks:
            return False
        if not self.text.startswith("{") and not sentence.startswith(chunks[0]):
            return False
        if not self.text.endswith("}") and not sentence.endswith(chunks[-1]):
            return False
        at = 0
        for chunk in chunks:
            found = sentence.find(chunk, at)
            if found < 0:
                return False
            at = found + len(chunk)
        return True


def _chunks(text: str) -> tuple[str, ...]:
    return tuple(c for c in _FIELD_RE.split(text)[::2] if c)


def reply_sentences(reply: str) -> list[str]:
    """The sentences of a written reply, not split inside a “quotation”."""
    out, start, depth = [], 0, 0
    text = " ".join(reply.split())
    for i, ch in enumerate(text):
        if ch == "“":
            depth += 1
        elif ch == "”":
            depth = max(0, depth - 1)
        elif ch in ".?!" and depth == 0 and (i + 1 == len(text) or text[i + 1] == " "):
            out.append(text[start : i + 1].strip())
            start = i + 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


@cache
def templates() -> dict[str, Template]:
    """Every template by id."""
    return {
        f"{slot}.{n}": Template(f"{slot}.{n}", slot, text, _chunks(text))
        for slot, texts in {**SLOTS, **CLAIM_SLOTS}.items()
        for n, text in enumerate(texts)
    }


def slot_ids(slot: str) -> list[str]:
    return [t.id for t in templates().values() if t.slot == slot]


@lru_cache(maxsize=USED_CACHE_REPLIES)
def used_in(reply: str) -> frozenset[str]:
    """The ids of the templates *reply* (a past mirrorback) says."""
    sentences = reply_sentences(reply)
    return frozenset(t.id for t in templates().values()
                     if any(t.said_in(s) for s in sentences))


class Chooser:
    """Picks templates the recent replies did not use; ties broken by a hash of the entry.

    *history*: the template ids of past replies, most recent first."""

    def __init__(self, seed: bytes, history: Sequence[frozenset[str]]) -> None:
        self.seed = seed
        self.last_used: dict[str, int] = {}
        for age, ids in enumerate(history):
            for tid in ids:
                self.last_used.setdefault(tid, age)
        self.chosen: set[str] = set()

    def fresh(self, tid: str) -> bool:
        return self.last_used.get(tid, VARIETY_WINDOW) >= VARIETY_WINDOW

    def pick(self, options: Sequence[str], *, fresh_only: bool = False) -> str | None:
        """One of *options* (template ids): a fresh one if any, else (unless
        *fresh_only*) the one used longest ago."""
        options = [o for o in options if o not in self.chosen]
        if not options:
            return None
        fresh = [o for o in options if self.fresh(o)]
        if fresh:
            pool = fresh
        elif fresh_only:
            return None
        else:
            oldest = max(self.last_used.get(o, VARIETY_WINDOW) for o in options)
            pool = [o for o in options if self.last_used.get(o, VARIETY_WINDOW) == oldest]
        digest = hashlib.blake2b(self.seed + pool[0].encode(), digest_size=4).digest()
        choice = pool[int.from_bytes(digest, "big") % len(pool)]
        self.chosen.add(choice)
        return choice


# Claims about past reflections: each form says one checkable fact (claims.py).
CLAIM_SLOTS: dict[str, tuple[str, ...]] = {
    "claim_theme_count": (
        "You've written about {label} in {n} of your last {w} reflections.",
        "Of your last {w} reflections, {n} were about {label} too.",
    ),
    "claim_theme_each": (
        "You've written about {label} in each of your last {w} reflections.",
        "Each of your last {w} reflections was about {label} too.",
    ),
    "claim_theme_previous": (
        "Your previous reflection was about {label} too.",
        "There was {label} in your previous reflection too.",
    ),
    "claim_person_count": (
        "{Who} has come up in {n} of your last {w} reflections.",
        "You've written about {who} in {n} of your last {w} reflections.",
        "Of your last {w} reflections, {n} mention {who}.",
    ),
    "claim_person_each": (
        "{Who} has come up in each of your last {w} reflections.",
        "Each of your last {w} reflections mentions {who}.",
    ),
    "claim_person_previous": (
        "{Who} came up in your previous reflection as well.",
        "You wrote about {who} in your previous reflection too.",
    ),
    "claim_word_count": (
        "You've used the word {f} in {n} of your last {w} reflections.",
        "The word {f} is in {n} of your last {w} reflections.",
    ),
    "claim_word_each": (
        "You've used the word {f} in each of your last {w} reflections.",
    ),
    "claim_word_previous": (
        "You used the word {f} in your previous reflection too.",
        "The word {f} was in your previous reflection as well.",
    ),
}
