"""Claims about past reflections that a mirrorback may make — each one true.

A claim says one countable fact about the reflections the engine was shown
(``recurrence.recent``: the last ``w`` before this one): that a theme, a person,
or the very same feeling word came up in ``n`` of them, in each of them, or in
the previous one. It is counted here, from those reflections, when the claim is
made; a feeling is claimed only by its word, never by its family ("“happy” was
in your previous reflection" is never said of "proud and relieved").

``claims_for`` returns the claims worth making for an entry, most salient
first: a person or theme of the entry's emotional centre, or one the entry
keeps returning to, or its own feeling word; never one the last
``CLAIM_QUIET_REPLIES`` replies already made about the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crdt.journal import Reflection

from .analysis import Analysis, Person
from .lexicon import WORD_RE, normalize_token
from .phrasing import reply_sentences, slot_ids, templates
from .recurrence import MIN_RECURRENCE, signature, theme_label

CLAIM_QUIET_REPLIES = 3  # replies in which the same subject is not claimed again
MIN_CLAIM_WORD_CHARS = 3
MIN_THEME_MENTIONS = 2  # a theme or person outside the centre: claimed if mentioned this often


@dataclass(frozen=True)
class Claim:
    kind: str  # "person", "theme" or "word"
    key: str  # Person.key, theme name, or the feeling word (lower case)
    subject: str  # how it is said: "Maya", "your boss", "work", "“anxious”"
    form: str  # "count", "each" or "previous"
    n: int
    w: int

    @property
    def slot(self) -> str:
        return f"claim_{self.kind}_{self.form}"

    def values(self) -> dict[str, str]:
        cap = self.subject[:1].upper() + self.subject[1:]
        return {"label": self.subject, "Label": cap, "who": self.subject, "Who": cap,
                "f": self.subject, "n": str(self.n), "w": str(self.w)}


def person_label(p: Person) -> str:
    return p.name if p.name else f"your {p.role}"


def _words(text: str) -> frozenset[str]:
    return frozenset(normalize_token(m.group()) for m in WORD_RE.finditer(text))


def _claim(kind: str, key: str, subject: str, hits: Sequence[bool]) -> Claim | None:
    n, w = sum(hits), len(hits)
    if w >= MIN_RECURRENCE and n == w:
        return Claim(kind, key, subject, "each", n, w)
    if n >= MIN_RECURRENCE:
        return Claim(kind, key, subject, "count", n, w)
    if hits and hits[-1]:
        return Claim(kind, key, subject, "previous", n, w)
    return None


def recently_claimed(subject: str, replies: Sequence[str]) -> bool:
    """Whether one of *replies* (most recent first) made a claim about *subject*."""
    claim_templates = [t for t in templates().values() if t.slot.startswith("claim_")]
    low = subject.lower()
    for reply in replies[:CLAIM_QUIET_REPLIES]:
        for sentence in reply_sentences(reply):
            if low in sentence.lower() and any(t.said_in(sentence) for t in claim_templates):
                return True
    return False


def claims_for(
    a: Analysis,
    tail: Sequence[Reflection],
    *,
    centre_sentence: int | None,
    replies: Sequence[str] = (),
) -> list[Claim]:
    """True claims about *tail* (the past shown, oldest first) worth making for *a*."""
    if not tail:
        return []
    sigs = [signature(r.text) for r in tail]
    out: list[Claim] = []
    starts = [s.span.start for s in a.sentences]

    def in_centre(at: int) -> bool:
        if centre_sentence is None or not starts:
            return False
        k = max(i for i, st in enumerate(starts) if st <= at) if starts[0] <= at else 0
        return k == centre_sentence

    past_words = [_words(r.text) for r in tail]
    past_texts = [" ".join(r.text.lower().split()) for r in tail]
    for p in a.people:
        central = any(in_centre(sp.start) for sp in p.spans)
        if not central and len(p.spans) < MIN_THEME_MENTIONS:
            continue
        # written, as a reader would count it, or found by the reader of names
        if p.name:
            name = p.name.lower()
            hits = [name in pw or f"{name}'s" in pw or p.key in s.people
                    for pw, s in zip(past_words, sigs, strict=True)]
        else:
            hits = [p.key in text or p.key in s.people
                    for text, s in zip(past_texts, sigs, strict=True)]
        c = _claim("person", p.key, person_label(p), hits)
        if c is not None:
            out.append(c)
    words: list[str] = []
    for f in a.named_feelings:
        word = normalize_token(" ".join(f.span.text.split()))
        if len(word) >= MIN_CLAIM_WORD_CHARS and word.isalpha() and word not in words:
            words.append(word)
    for word in words:
        c = _claim("word", word, f"“{word}”", [word in pw for pw in past_words])
        if c is not None:
            out.append(c)
    for t in a.themes:
        central = any(in_centre(sp.start) for sp in t.spans)
        if not central and len(t.spans) < MIN_THEME_MENTIONS:
            continue
        c = _claim("theme", t.name, theme_label(t.name), [t.name in s.themes for s in sigs])
        if c is not None:
            out.append(c)
    rank = {"person": 0, "word": 1, "theme": 2}
    form_rank = {"each": 0, "count": 1, "previous": 2}
    out.sort(key=lambda c: (form_rank[c.form], rank[c.kind], -c.n))
    return [c for c in out if not recently_claimed(c.subject, replies)]


def claim_options(claim: Claim) -> list[str]:
    return slot_ids(claim.slot)
