"""The offline engine: a mirrorback made of the person's own words, no model needed.

``compose_mirrorback(text, past)`` is pure and synchronous: crisis language
first (``safety``), then ``text.analyze`` reads the entry, ``recurrence`` finds
what it shares with recent entries, and the reply is assembled from
observations that quote or echo the entry — its words, the feelings it names
(only those, never negated ones), its people and themes — a factual note on
recurring threads, and at most one open question grounded in its words.

House rules, checked by the tests over a corpus: no advice, no diagnosis, no
flattery, no canned reply. Wording varies between a few equivalent templates,
chosen by a hash of the text (never global randomness), so the same entry
always gets the same mirrorback.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from crdt.journal import Reflection

from .analysis import Analysis, Feeling, Person, Span, Tension
from .base import MirrorbackRequest
from .recurrence import PAST_WINDOW, Thread, recurring_threads, theme_label
from .safety import crisis_reply, detect_crisis
from .text import analyze

MAX_QUOTE_WORDS = 14
MAX_TENSION_QUOTE_WORDS = 9
MAX_RAW_QUOTE_CHARS = 80
MAX_FEELINGS_NAMED = 4
MAX_PEOPLE_NAMED = 3
MAX_THEMES_NAMED = 3
MAX_THREAD_NOTES = 2
_TRAILING = " \t\n.,;:!?…-–—\"'“”‘’()"


# --------------------------------------------------------------------------- small helpers


def _q(words: str) -> str:
    return f"“{words}”"


def _and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


@dataclass(frozen=True)
class _Voice:
    """Chooses between equivalent wordings by a hash of the entry."""

    seed: bytes

    def pick(self, slot: str, options: Sequence[str]) -> str:
        digest = hashlib.blake2b(self.seed + slot.encode(), digest_size=4).digest()
        return options[int.from_bytes(digest, "big") % len(options)]


def _clip(a: Analysis, span: Span, max_words: int, keep: str = "start") -> str:
    """The words of *span*, cut to *max_words* (keeping its start or end), ellipsis where cut."""
    toks = [t for t in a.tokens if span.start <= t.start and t.end <= span.end]
    if not toks:
        raw = " ".join(span.text.split()).strip(_TRAILING) or " ".join(span.text.split())
        return raw if len(raw) <= MAX_RAW_QUOTE_CHARS else raw[:MAX_RAW_QUOTE_CHARS] + "…"
    if len(toks) <= max_words:
        start, end, pre, post = span.start, toks[-1].end, "", ""
    elif keep == "end":
        start, end, pre, post = toks[-max_words].start, toks[-1].end, "…", ""
    else:
        start, end, pre, post = toks[0].start, toks[max_words - 1].end, "", "…"
    body = " ".join(a.text[start:end].split()).strip(_TRAILING)
    return f"{pre}{body}{post}"


def _clip_around(a: Analysis, sentence: Span, focus: int, max_words: int) -> str:
    """Words of *sentence* around character *focus*, at most *max_words*."""
    toks = [t for t in a.tokens if sentence.start <= t.start and t.end <= sentence.end]
    if len(toks) <= max_words:
        return _clip(a, sentence, max_words)
    at = next((k for k, t in enumerate(toks) if t.end > focus), 0)
    first = max(0, min(at - max_words // 3, len(toks) - max_words))
    last = first + max_words - 1
    body = " ".join(a.text[toks[first].start : toks[last].end].split()).strip(_TRAILING)
    return f"{'…' if first > 0 else ''}{body}{'…' if last < len(toks) - 1 else ''}"


def _plural(role: str) -> bool:
    last = role.split()[-1] if role else ""
    return last == "children" or (last.endswith("s") and not last.endswith("ss"))


def _person_label(p: Person) -> str:
    if p.name and p.role:
        return f"{p.name} (your {p.role})"
    if p.name:
        return p.name
    return f"your {p.role}"


def _feeling_words(feelings: Sequence[Feeling]) -> list[str]:
    seen: dict[str, str] = {}
    for f in feelings:
        word = " ".join(f.span.text.split())
        if word[:1].isupper() and word[1:].islower():
            word = word.lower()  # "Grateful for…" at the start of a sentence
        seen.setdefault(word.lower(), word)
    return list(seen.values())


# --------------------------------------------------------------------------- composing


class _Composer:
    def __init__(self, a: Analysis, threads: Sequence[Thread], voice: _Voice) -> None:
        self.a = a
        self.threads = threads
        self.voice = voice
        self.tension: Tension | None = a.tensions[0] if a.tensions else None
        # a "question" of punctuation alone ("?") is not one to reflect back
        self.questions = [q for q in a.questions if any(c.isalnum() for c in q.text)]

    def _sentence_scores(self) -> list[float]:
        """How much of the entry each sentence carries: feelings, people, themes, keyphrases."""
        a = self.a
        starts = [s.span.start for s in a.sentences]
        scores = [0.0] * len(starts)

        def add(at: int, weight: float) -> None:
            scores[max(0, bisect_right(starts, at) - 1)] += weight

        for f in a.named_feelings:
            scores[f.sentence] += 3.0
        for p in a.people:
            for sp in p.spans:
                add(sp.start, 2.0)
        for t in a.themes:
            for sp in t.spans:
                add(sp.start, 1.0)
        for k in a.keyphrases[:3]:
            add(k.span.start, 1.0)
        return scores

    def opening(self) -> str | None:
        a = self.a
        if not a.sentences:
            return None
        candidates = list(range(len(a.sentences)))
        if self.tension is not None:
            t = self.tension
            candidates = [
                i
                for i in candidates
                if not (
                    a.sentences[i].span.start < t.right.end
                    and t.left.start < a.sentences[i].span.end
                )
            ]
        candidates = [i for i in candidates if not a.sentences[i].is_question]
        if not candidates:
            return None
        scores = self._sentence_scores()
        best = max(candidates, key=lambda i: (scores[i], -i))
        sentence = a.sentences[best].span
        focus = [f.span.start for f in a.named_feelings if f.sentence == best]
        quote = _clip_around(a, sentence, focus[0] if focus else sentence.start, MAX_QUOTE_WORDS)
        if not quote:
            return None
        return self.voice.pick(
            "opening",
            (
                f"You wrote: {_q(quote)}.",
                f"In your words: {_q(quote)}.",
                f"{_q(quote)} — you wrote that.",
            ),
        )

    def feelings(self) -> str | None:
        named = _feeling_words(self.a.named_feelings)[:MAX_FEELINGS_NAMED]
        negated = [f for f in self.a.feelings if f.negation is not None]
        parts: list[str] = []
        if len(named) == 1:
            parts.append(
                self.voice.pick(
                    "feeling1",
                    (
                        f"The feeling word you used is {_q(named[0])}.",
                        f"You named a feeling: {_q(named[0])}.",
                    ),
                )
            )
        elif named:
            words = _and([_q(w) for w in named])
            parts.append(
                self.voice.pick(
                    "feelings", (f"The feelings you named: {words}.", f"You named {words}.")
                )
            )
        if negated:
            f = negated[0]
            assert f.negation is not None
            said = " ".join(self.a.text[f.negation.start : f.span.end].split())
            parts.append(f"You also wrote {_q(said)}.")
        return " ".join(parts) or None

    def people(self) -> str | None:
        people = list(self.a.people)[:MAX_PEOPLE_NAMED]
        if not people:
            return None
        labels = [_person_label(p) for p in people]
        who = _and(labels)
        plural = len(labels) > 1 or (people[0].name is None and _plural(people[0].role or ""))
        return self.voice.pick(
            "people",
            (
                f"You mention {who}.",
                f"{_cap(who)} {'are' if plural else 'is'} part of this.",
                f"{_cap(who)} {'appear' if plural else 'appears'} here.",
            ),
        )

    def themes(self) -> str | None:
        # characters that belong to a person already named ("my boss" → no "boss" again)
        covered = {
            c for p in self.a.people if p.role for s in p.spans for c in range(s.start, s.end)
        }
        chosen: list[tuple[str, str | None]] = []
        for t in self.a.themes:
            own = [s for s in t.spans if s.start not in covered and s.end - 1 not in covered]
            if not own:
                continue  # only present through a person already named
            label = theme_label(t.name)
            word = next(
                (" ".join(s.text.split()) for s in own if s.text.lower() != label.lower()), None
            )
            chosen.append((label, word))
            if len(chosen) == MAX_THEMES_NAMED:
                break
        if not chosen:
            return None
        labels = _and([f"{label} ({_q(word)})" if word else label for label, word in chosen])
        return self.voice.pick(
            "themes",
            (
                f"It touches on {labels}.",
                f"{_cap(labels)} {'runs' if len(chosen) == 1 else 'run'} through it.",
            ),
        )

    def own_question(self) -> str | None:
        if not self.questions:
            return None
        q = _clip(self.a, self.questions[0], MAX_QUOTE_WORDS)
        return f"You asked yourself {_q(q)}." if q else None

    def thread_notes(self) -> str | None:
        notes: list[str] = []
        for t in self.threads[:MAX_THREAD_NOTES]:
            notes.append(self._thread_note(t))
        return " ".join(notes) or None

    def _thread_note(self, t: Thread) -> str:
        if t.kind == "person":
            person = next(p for p in self.a.people if p.key == t.key)
            label = _person_label(person)
            if t.count >= 2:
                return f"{_cap(label)} {self._has_come_up(t)}."
            return f"{_cap(label)} came up in your previous reflection as well."
        if t.kind == "theme":
            label = theme_label(t.key)
            if t.count >= 2:
                return f"You've written about {label} in {self._count_of(t)}."
            return f"Your previous reflection was about {label} too."
        words = _feeling_words([f for f in self.a.named_feelings if f.family == t.key])
        word = _q(words[0]) if words else t.key
        if t.count >= 2:
            return f"Feelings like {word} appear in {self._count_of(t)}."
        return f"Feelings like {word} were in your previous reflection too."

    def _count_of(self, t: Thread) -> str:
        if t.count == t.window:
            return f"each of your last {t.window} reflections"
        return f"{t.count} of your last {t.window} reflections"

    def _has_come_up(self, t: Thread) -> str:
        return f"has come up in {self._count_of(t)}"

    def question(self) -> str:
        a, v = self.a, self.voice
        if self.tension is not None:
            t = self.tension
            left = _clip(a, t.left, MAX_TENSION_QUOTE_WORDS, keep="end")
            right = _clip(a, t.right, MAX_TENSION_QUOTE_WORDS)
            return v.pick(
                "q-tension",
                (
                    f"What is it like to hold both {_q(left)} and {_q(right)}?",
                    f"When {_q(left)} and {_q(right)} sit side by side, what do you notice?",
                ),
            )
        if self.questions:
            return v.pick(
                "q-own",
                (
                    "What comes up when you stay with that question?",
                    "What would your first answer to it be, today?",
                ),
            )
        named = _feeling_words(a.named_feelings)
        if named:
            w = _q(named[0])
            return v.pick(
                "q-feeling",
                (
                    f"What sits underneath {w} for you right now?",
                    f"Where do you notice {w} most?",
                    f"When {w} is there, what else is there with it?",
                ),
            )
        if a.people:
            first = a.people[0]
            who = _person_label(first)
            does = "do" if first.name is None and _plural(first.role or "") else "does"
            return v.pick(
                "q-person",
                (
                    f"What is it about {who} that stays with you here?",
                    f"What {does} {who} bring up in you?",
                ),
            )
        if a.themes:
            label = theme_label(a.themes[0].name)
            return v.pick(
                "q-theme",
                (
                    f"What does {label} mean to you right now?",
                    f"What place does {label} have in your days right now?",
                ),
            )
        if a.keyphrases and a.english:
            kp = _clip(a, a.keyphrases[0].span, MAX_TENSION_QUOTE_WORDS)
            return v.pick(
                "q-phrase",
                (
                    f"What stands out to you when you read {_q(kp)} back?",
                    f"What is underneath {_q(kp)}?",
                ),
            )
        last = a.sentences[-1].span if a.sentences else Span(0, len(a.text), a.text)
        whole = _clip(a, last, MAX_QUOTE_WORDS)
        if not any(c.isalnum() for c in whole):
            return "What would you put into words, if you could?"
        return v.pick(
            "q-open",
            (f"What would you add to {_q(whole)}?", f"What else is there, besides {_q(whole)}?"),
        )

    def paragraphs(self) -> list[str]:
        observed = [
            s
            for s in (
                self.opening(),
                self.own_question(),
                self.feelings(),
                self.people(),
                self.themes(),
            )
            if s
        ]
        out = [" ".join(observed)] if observed else []
        notes = self.thread_notes()
        if notes:
            out.append(notes)
        out.append(self.question())
        return out


def mirrorback_paragraphs(
    text: str, past: Sequence[Reflection] = (), *, country: str = ""
) -> list[str]:
    """The mirrorback for *text* as paragraphs (observation, recurring threads, question).
    Risk of harm (``safety``) gets the crisis reply or a check-in instead, with the
    crisis lines of *country*."""
    signal = detect_crisis(text)
    if signal is not None:
        return crisis_reply(text, signal, country).split("\n\n")
    analysis = analyze(text)
    threads = recurring_threads(analysis, past)
    voice = _Voice(hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest())
    return _Composer(analysis, threads, voice).paragraphs()


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
