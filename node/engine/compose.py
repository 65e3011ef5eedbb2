"""Composing an offline mirrorback from what an entry says and what came before.

``compose(analysis, past)`` returns the paragraphs of the reply:

1. what the entry says — its emotional centre quoted (``centre``), a question
   the person asked themselves, the feelings they named (only those; a denied
   one is quoted with its "not"), the people and themes in it;
2. at most one true claim about the past reflections (``claims``), when one is
   worth making and was not made in the last few replies;
3. one open question, grounded in the entry's own words: the two sides of a
   tension, their own question, a feeling word, the centre, a person or a theme.

Every sentence comes from a template (``phrasing``) chosen so that the last
``phrasing.VARIETY_WINDOW`` replies (the mirrorbacks stored with the past
reflections) did not use it. Pure and deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from crdt.journal import Reflection

from .analysis import Analysis, Feeling, Person, Span, Theme
from .centre import Centre, clip_around, emotional_centre, meaningful
from .claims import claim_options, claims_for, person_label
from .phrasing import VARIETY_WINDOW, Chooser, slot_ids, templates, used_in
from .recurrence import PAST_WINDOW, recent, theme_label

MAX_QUOTE_WORDS = 14
MAX_TENSION_QUOTE_WORDS = 9
MAX_FEELINGS_NAMED = 4
MAX_PEOPLE_NAMED = 3
MAX_THEMES_NAMED = 2
MAX_CLAIMS = 1
_TRAILING = " \t\n.,;:!?…-–—\"'“”‘’()"


def _q(words: str) -> str:
    return f"“{words}”"


def _and(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _plural(role: str) -> bool:
    last = role.split()[-1] if role else ""
    return last == "children" or (last.endswith("s") and not last.endswith("ss"))


def _full_person_label(p: Person) -> str:
    if p.name and p.role:
        return f"{p.name} (your {p.role})"
    return person_label(p)


def _feeling_words(feelings: Sequence[Feeling]) -> list[str]:
    seen: dict[str, str] = {}
    for f in feelings:
        word = " ".join(f.span.text.split())
        if word[:1].isupper() and word[1:].islower():
            word = word.lower()  # "Grateful for…" at the start of a sentence
        seen.setdefault(word.lower(), word)
    return list(seen.values())


def _clip(a: Analysis, span: Span, max_words: int, keep: str = "start") -> str:
    """The words of *span*, cut to *max_words* (keeping its start or end)."""
    toks = [t for t in a.tokens if span.start <= t.start and t.end <= span.end]
    if not toks:
        return " ".join(span.text.split()).strip(_TRAILING) or " ".join(span.text.split())
    if len(toks) <= max_words:
        return " ".join(a.text[toks[0].start : toks[-1].end].split()).strip(_TRAILING)
    if keep == "end":
        body = a.text[toks[-max_words].start : toks[-1].end]
        return "…" + " ".join(body.split()).strip(_TRAILING)
    body = a.text[toks[0].start : toks[max_words - 1].end]
    return " ".join(body.split()).strip(_TRAILING) + "…"


class Composer:
    def __init__(self, a: Analysis, past: Sequence[Reflection]) -> None:
        self.a = a
        self.past = recent(past, PAST_WINDOW)  # oldest first
        replies = [r.mirrorback.text for r in reversed(self.past) if r.mirrorback is not None]
        self.replies = replies[:VARIETY_WINDOW]  # most recent first
        seed = hashlib.blake2b(a.text.encode("utf-8"), digest_size=16).digest()
        self.choose = Chooser(seed, [used_in(r) for r in self.replies])
        self.tension = a.tensions[0] if a.tensions else None
        self.questions = [q for q in a.questions if any(c.isalnum() for c in q.text)]
        avoid = [Span(self.tension.left.start, self.tension.right.end, "")] if self.tension else []
        self.centre: Centre | None = emotional_centre(a, avoid=avoid)
        if self.centre is not None and a.sentences[self.centre.sentence].is_question:
            self.centre = None  # their own question is reflected as one

    def say(self, slot: str, values: dict[str, str], *, optional: bool = False) -> str | None:
        tid = self.choose.pick(slot_ids(slot), fresh_only=optional)
        return templates()[tid].fill(values) if tid is not None else None

    # ------------------------------------------------------------------ what it says

    def opening(self) -> str | None:
        c = self.centre
        if c is None or not any(ch.isalnum() for ch in c.quote):
            return None
        return self.say("opening", {"q": _q(c.quote)})

    def own_question(self) -> str | None:
        if not self.questions:
            return None
        q = _clip(self.a, self.questions[0], MAX_QUOTE_WORDS)
        return self.say("own_question", {"q": _q(q)}) if q else None

    def feelings(self) -> str | None:
        named = _feeling_words(self.a.named_feelings)[:MAX_FEELINGS_NAMED]
        parts: list[str] = []
        quoted = self.centre.quote.strip(_TRAILING).lower() if self.centre else ""
        if len(named) == 1 and named[0].lower() != quoted:  # not "“Nervous”… “nervous”"
            said = self.say("feeling", {"f": _q(named[0])}, optional=True)
            parts += [said] if said else []
        elif named:
            said = self.say("feelings", {"fs": _and([_q(w) for w in named])}, optional=True)
            parts += [said] if said else []
        denied = [f for f in self.a.feelings if f.negation is not None]
        if denied:
            f = denied[0]
            assert f.negation is not None
            words = " ".join(self.a.text[f.negation.start : f.span.end].split())
            said = self.say("denied", {"neg": _q(words)}, optional=True)
            parts += [said] if said else []
        return " ".join(parts) or None

    def people(self) -> str | None:
        people = list(self.a.people)[:MAX_PEOPLE_NAMED]
        if not people:
            return None
        who = _and([_full_person_label(p) for p in people])
        plural = len(people) > 1 or (people[0].name is None and _plural(people[0].role or ""))
        return self.say("people", {
            "who": who, "Who": _cap(who), "be": "are" if plural else "is",
            "appear": "appear" if plural else "appears", "come": "come" if plural else "comes",
        }, optional=True)

    def themes(self) -> str | None:
        covered = {
            c for p in self.a.people if p.role for s in p.spans for c in range(s.start, s.end)
        }
        chosen: list[tuple[str, str | None]] = []
        centre = self.a.sentences[self.centre.sentence].span if self.centre else None

        def weight(t: Theme) -> tuple[bool, int]:
            central = centre is not None and any(centre.start <= s.start < centre.end
                                                 for s in t.spans)
            return central, len(t.spans)

        for t in sorted(self.a.themes, key=weight, reverse=True):  # the centre's first
            own = [s for s in t.spans if s.start not in covered and s.end - 1 not in covered]
            if not own:
                continue
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
        return self.say("themes", {"labels": labels}, optional=True)

    def claims(self) -> str | None:
        tail = self.past
        found = claims_for(
            self.a, tail, centre_sentence=self.centre.sentence if self.centre else None,
            replies=self.replies,
        )
        out: list[str] = []
        for claim in found:
            tid = self.choose.pick(claim_options(claim), fresh_only=True)
            if tid is None:
                continue
            out.append(templates()[tid].fill(claim.values()))
            if len(out) >= MAX_CLAIMS:
                break
        return " ".join(out) or None

    # ------------------------------------------------------------------ the question

    def question(self) -> str:
        """One open question: the first kind that applies and has a fresh template,
        in order tension, own question, feeling, centre, person, theme, open."""
        for slot, values in self._question_kinds():
            tid = self.choose.pick(slot_ids(slot), fresh_only=True)
            if tid is not None:
                return templates()[tid].fill(values)
        slot, values = self._question_kinds()[0]
        tid = self.choose.pick(slot_ids(slot))
        assert tid is not None
        return templates()[tid].fill(values)

    def _question_kinds(self) -> list[tuple[str, dict[str, str]]]:
        a = self.a
        kinds: list[tuple[str, dict[str, str]]] = []
        if self.tension is not None:
            left = _clip(a, self.tension.left, MAX_TENSION_QUOTE_WORDS, keep="end")
            right = _clip(a, self.tension.right, MAX_TENSION_QUOTE_WORDS)
            if meaningful(left) and meaningful(right):  # not "I am" vs "I went"
                kinds.append(("q_tension", {"l": _q(left), "r": _q(right)}))
        if self.questions:
            kinds.append(("q_own", {}))
        named = _feeling_words(a.named_feelings)
        if named:
            central = self.centre.feeling if self.centre and self.centre.feeling else named[0]
            kinds.append(("q_feeling", {"f": _q(central)}))
        if self.centre is not None and self.centre.handle:
            kinds.append(("q_centre", {"h": _q(self.centre.handle)}))
        if a.people:
            first = a.people[0]
            who = _full_person_label(first)
            does = "do" if first.name is None and _plural(first.role or "") else "does"
            kinds.append(("q_person", {"who": who, "does": does}))
        if a.themes:
            kinds.append(("q_theme", {"label": theme_label(a.themes[0].name)}))
        last = a.sentences[-1].span if a.sentences else Span(0, len(a.text), a.text)
        whole = clip_around(a, last, last.start, MAX_QUOTE_WORDS) if a.sentences else ""
        if meaningful(whole):
            kinds.append(("q_open", {"q": _q(whole)}))
        else:
            kinds.append(("q_plain", {}))
        return kinds

    def paragraphs(self) -> list[str]:
        observed = [s for s in (self.opening(), self.own_question(), self.feelings(),
                                self.people(), self.themes()) if s]
        out = [" ".join(observed)] if observed else []
        claim = self.claims()
        if claim:
            out.append(claim)
        out.append(self.question())
        return out


def compose(analysis: Analysis, past: Sequence[Reflection] = ()) -> list[str]:
    """The paragraphs of the offline mirrorback for *analysis*, given *past*
    reflections (oldest first, with their stored mirrorbacks)."""
    return Composer(analysis, past).paragraphs()
