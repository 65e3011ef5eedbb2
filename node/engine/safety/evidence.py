"""The scored layer of the crisis net: evidence that accumulates without a listed pattern.

The rules (``rules.json``) name ways of saying a thing; people find others. This
layer reads the same token stream (``normalize``) for *concepts* — death and not
existing, wanting it all to stop, weariness, hopelessness, being a burden,
farewells and finality, methods and means, dwelling on them, intent and time,
hurting oneself, being hurt or threatened by someone — each a family of cues with
a weight (``evidence.json``, written in the pattern language of ``rules``).

Theory of operation. The entry is read once, token by token: each cue is tried
only where a word its match must begin with stands (``Scanner``). A hit is
dropped when it lies inside a *cancel* or an *idiom* ("dead tired", "to die
for", "kill the heat", "my phone died", "scared of dying"), when a negator comes
just before it ("I have never wanted to die", "I don't have any thoughts of
suicide"), or when its clause is about someone else: the nearest person before
it is another ("grandma died", "she has been cutting") and the hit itself does
not name the writer. The rest are weighed per window — a sentence, or up to
three short ones read together when together they say more than any one alone
("I'm done. I can't. I don't want to.") —

    score = Σ over families (strongest cue + ACCUMULATION × the others, capped)
          + Σ dampeners found in the window (negative: laughing, a trivial object,
            media, a profession, games, cooking, celebration, being away,
            embarrassment, a routine, a resolved past anywhere in the entry)

and a window whose score reaches ``check_in`` is a possible risk; one that reaches
``crisis`` with two strong families is a clear one. So "I want to disappear." is
weighed as wanting to disappear at the end of a clause (3.5) + wanting (1), and
"I want to disappear into a good book this weekend" as disappearing into
something (an idiom) + wanting (1), and nothing more. The thresholds err toward
the check-in: it is the tier for what is uncertain.

``detect`` judges the rules' findings with the same reading (``Reading.idiom``,
``Reading.damping``, ``Reading.someone_else``).

Pure and deterministic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .normalize import CLAUSE_MARK, SENTENCE_MARK, Normalized

About = Literal["self", "others"]
ACCUMULATION = 0.5  # each further cue of a family adds half its weight...
FAMILY_BONUS_CAP = 1.5  # ...up to this much above the family's strongest cue
MAX_WINDOW_SENTENCES = 3  # short sentences read together: "I'm done. I can't. I don't want to."
SUBJECT_LOOKBACK_WORDS = 8  # how far back in the clause the nearest person is looked for
TRAILING_MARK_CHARS = 3  # "!" or a laughing face just after a window's last word
NEGATION_WINDOW_WORDS = 5  # "I don't have any thoughts of suicide"
_RANK = {"check_in": 1, "crisis": 2}
_LAUGH_MARKS = ("😂", "🤣", "💀", "😆", "😅", "😹", "🙈")
# a cue that begins with one of these carries its own negation ("don't want to be here")
_NEGATING_STARTS = frozenset({"@NOT", "not", "never", "no", "do_not", "can_not", "could_not",
                              "no_one", "nobody", "nothing"})
# "I don't think I can stop myself": a new subject ends the negation's reach
_NOT_IN_NEGATION_GAP = frozenset({"i", "myself", "let", "like", "so", "that", "all", "at"})


class EvidenceError(ValueError):
    """``evidence.json`` cannot be compiled."""


@dataclass(frozen=True)
class Cue:
    family: str
    weight: float
    pattern: re.Pattern[str]
    negatable: bool  # a negator just before it undoes it; False when it begins with one


@dataclass(frozen=True)
class Scanner:
    """Patterns indexed by the token a match must begin with, so an entry is read once,
    token by token, rather than once per pattern; the few that may begin anywhere are
    searched whole, and only when the entry has one of their anchor words."""

    patterns: tuple[re.Pattern[str], ...]
    by_leading: Mapping[str, tuple[int, ...]]
    anywhere: tuple[tuple[int, frozenset[str] | None], ...]  # (pattern, its anchor words)

    @classmethod
    def build(cls, patterns: Sequence[re.Pattern[str]],
              leadings: Sequence[frozenset[str] | None],
              anchors: Sequence[frozenset[str] | None]) -> Scanner:
        by_leading: dict[str, list[int]] = {}
        anywhere: list[tuple[int, frozenset[str] | None]] = []
        for i, (leading, anchor) in enumerate(zip(leadings, anchors, strict=True)):
            if leading is None:
                anywhere.append((i, anchor))
            for word in leading or ():
                by_leading.setdefault(word, []).append(i)
        return cls(tuple(patterns), {w: tuple(ix) for w, ix in by_leading.items()},
                   tuple(anywhere))

    def scan(self, norm: Normalized, words: frozenset[str]) -> list[tuple[int, int, int]]:
        """Every (pattern, start, end) match in the token text of *norm*, whose set of
        tokens is *words*."""
        text = norm.text
        out: list[tuple[int, int, int]] = []
        for tok, offset in zip(norm.tokens, norm.starts, strict=True):
            for i in self.by_leading.get(tok, ()):
                m = self.patterns[i].match(text, offset)
                if m is not None:
                    out.append((i, m.start(), m.end()))
        for i, anchor in self.anywhere:
            if anchor is None or not anchor.isdisjoint(words):
                out.extend((i, m.start(), m.end()) for m in self.patterns[i].finditer(text))
        return out


@dataclass(frozen=True)
class Family:
    name: str
    about: About
    kind: str  # the C-SSRS category or kind of harm a window it leads is reported as
    strong: bool  # counts toward the two a clear (crisis) window needs
    subject: bool  # a hit is dropped when its clause is about someone else
    modifier: bool  # only adds to another family's evidence, never makes a window alone


@dataclass(frozen=True)
class Dampener:
    name: str
    weight: float  # negative
    pattern: re.Pattern[str]
    about: About | None  # only a window about this (None: any)
    rules: bool  # also damps the rules' clear findings (a frame, not a mood: media, a game)
    entry: bool  # found anywhere in the entry, not only the window ("I'm proud of me")


@dataclass(frozen=True)
class Evidence:
    families: Mapping[str, Family]
    cues: tuple[Cue, ...]
    cue_scanner: Scanner  # the cues' patterns, in the order of ``cues``
    cancels: Scanner  # void a cue: accidents, denials, other objects
    idioms: Scanner  # void a cue, and damp a rule's match: "dead tired"
    dampeners: tuple[Dampener, ...]
    self_words: frozenset[str]
    other_words: frozenset[str]
    negators: frozenset[str]
    negation_gap: frozenset[str]  # words that may stand between a negator and a cue
    check_in: float
    crisis: float
    rule_soften: float  # a rule's finding in a sentence damped this much: a check-in at most
    rule_drop: float  # ...and this much: none
    pair_max_words: int
    laugh_weight: float
    exclaim_weight: float


@dataclass(frozen=True)
class Weighed:
    """A window that reached a tier: where it is in the token text and why."""

    tier: Literal["crisis", "check_in"]
    about: About
    kind: str
    score: float
    families: tuple[str, ...]
    start: int  # the strongest cue, in Normalized.text
    end: int
    window_start: int
    window_end: int


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    cue: Cue


def compile_evidence(
    raw: Mapping[str, Any], pattern: Callable[[str], re.Pattern[str]],
    words: Callable[[str], Sequence[str]],
    anchor: Callable[[str], frozenset[str] | None],
    leading: Callable[[str], frozenset[str] | None],
) -> Evidence:
    """Compile *raw* (the ``evidence.json`` object) with *pattern* (the rules' pattern
    compiler), *words* (a concept's phrases), *anchor* (the words one of which a match
    of a pattern must contain) and *leading* (the words it must begin with). Raises
    EvidenceError."""
    try:
        families: dict[str, Family] = {}
        cues: list[Cue] = []
        sources: list[str] = []
        for name, fam in raw["families"].items():
            about = fam.get("about", "self")
            if about not in ("self", "others"):
                raise EvidenceError(f"family {name}: about must be self|others")
            families[name] = Family(name, about, str(fam["kind"]), bool(fam.get("strong")),
                                    bool(fam.get("subject", True)),
                                    bool(fam.get("modifier", False)))
            for weight, source in fam["cues"]:
                if not 0 < float(weight) <= 10:
                    raise EvidenceError(f"family {name}: weight {weight} out of range")
                first = {a.lstrip("!") for a in source.split()[0].split("|")}
                cues.append(Cue(name, float(weight), _compiled(pattern, source),
                                negatable=first.isdisjoint(_NEGATING_STARTS)))
                sources.append(source)
        dampeners = tuple(
            Dampener(name, float(d["weight"]), re.compile("|".join(
                f"(?:{_compiled(pattern, c, name).pattern})" for c in d["cues"])),
                d.get("about"), bool(d.get("rules", False)), d.get("scope") == "entry")
            for name, d in raw["dampeners"].items()
        )
        if any(d.weight >= 0 for d in dampeners):
            raise EvidenceError("a dampener's weight must be negative")
        return Evidence(
            families=families,
            cues=tuple(cues),
            cue_scanner=Scanner.build([c.pattern for c in cues],
                                      [leading(s) for s in sources],
                                      [anchor(s) for s in sources]),
            cancels=_scanner(pattern, anchor, leading, raw["cancel"]),
            idioms=_scanner(pattern, anchor, leading, raw["idioms"]),
            dampeners=dampeners,
            self_words=frozenset(p for p in words("SELF_REF") if " " not in p),
            other_words=frozenset(w for p in words("PERSON_OTHER") for w in p.split()),
            negators=frozenset(words("NOT")),
            negation_gap=frozenset(words("AUX")) - _NOT_IN_NEGATION_GAP,
            check_in=float(raw["check_in"]),
            crisis=float(raw["crisis"]),
            rule_soften=float(raw["rule_soften"]),
            rule_drop=float(raw["rule_drop"]),
            pair_max_words=int(raw["pair_max_words"]),
            laugh_weight=float(raw["dampeners"]["laugh"]["weight"]),
            exclaim_weight=float(raw["exclaim_weight"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, EvidenceError):
            raise
        raise EvidenceError(f"evidence.json: {exc!r}") from None


def _scanner(pattern: Callable[[str], re.Pattern[str]],
             anchor: Callable[[str], frozenset[str] | None],
             leading: Callable[[str], frozenset[str] | None],
             sources: Sequence[str]) -> Scanner:
    return Scanner.build([_compiled(pattern, s) for s in sources],
                         [leading(s) for s in sources], [anchor(s) for s in sources])


def _compiled(pattern: Callable[[str], re.Pattern[str]], source: str,
              name: str = "") -> re.Pattern[str]:
    try:
        return pattern(source)
    except ValueError as exc:
        raise EvidenceError(f"{name or source!r}: {exc}") from None


# --------------------------------------------------------------------------- weighing


class Reading:
    """One entry read for evidence: its cancels (idioms, denials), surviving cue hits,
    and the dampeners of any stretch of it. The rules' findings are judged with the
    same contexts (``detect``)."""

    def __init__(self, norm: Normalized, original: str, ev: Evidence) -> None:
        self.norm = norm
        self.original = original
        self.ev = ev
        words = frozenset(norm.tokens)
        self.idioms = [(m0, m1) for _, m0, m1 in ev.idioms.scan(norm, words)]
        self.cancels = self.idioms + [(m0, m1) for _, m0, m1 in ev.cancels.scan(norm, words)]
        self.hits: list[_Hit] = []
        for i, start, end in sorted(ev.cue_scanner.scan(norm, words)):
            cue = ev.cues[i]
            end -= 1
            if self.cancelled(start, end):
                continue
            if cue.negatable and _negated(norm, start, ev):
                continue
            if ev.families[cue.family].subject and self.someone_else(start, end):
                continue
            self.hits.append(_Hit(start, end, cue))

    def cancelled(self, start: int, end: int) -> bool:
        """[start, end) of the token text overlaps an idiom, an accident, a denial..."""
        return any(c0 < end and start < c1 for c0, c1 in self.cancels)

    def idiom(self, start: int, end: int) -> bool:
        """[start, end) of the token text overlaps a figure of speech ("bored to death")."""
        return any(c0 < end and start < c1 for c0, c1 in self.idioms)

    def someone_else(self, start: int, end: int) -> bool:
        return _about_someone_else(self.norm, start, end, self.ev)

    def negated(self, start: int) -> bool:
        """A negator shortly before the token at *start*, only auxiliaries between."""
        return _negated(self.norm, start, self.ev)

    def sentences(self) -> list[tuple[int, int]]:
        """[start, end) of each sentence of the token text."""
        return _sentences(self.norm.text)

    def damping(self, w0: int, w1: int, about: About, spans: Sequence[tuple[int, int]] = (),
                frames_only: bool = False, laughing_counts: bool = True) -> float:
        """The dampeners in the token text [w0, w1) of a window about *about*:
        laughing, a trivial object, media, a profession, sport, celebration, being
        away... (≤ 0). Words inside one of *spans* (the evidence itself: "make it to
        Christmas", "walk into traffic") are not also its benign frame. *frames_only*:
        only the dampeners that frame a sentence (media, a game...: ``"rules": true``);
        *laughing_counts*: False where laughing is judged already (the rules'
        hyperbole context)."""
        window = self.norm.text[w0:w1]
        damp = 0.0
        laughing = False
        for d in self.ev.dampeners:
            if ((frames_only and not d.rules) or (d.about is not None and d.about != about)
                    or (d.name == "laugh" and not laughing_counts)):
                continue
            base = 0 if d.entry else w0
            for m in d.pattern.finditer(self.norm.text if d.entry else window):
                m0, m1 = base + m.start(), base + m.end() - 1
                if not any(s0 <= m0 and m1 <= s1 for s0, s1 in spans):
                    damp += d.weight
                    laughing |= d.name == "laugh"
                    break
        o0, o1 = self.norm.original_span(w0, max(w0 + 1, w1 - 1))
        said = self.original[o0:o1 + TRAILING_MARK_CHARS]
        if laughing_counts and not laughing and any(mark in said for mark in _LAUGH_MARKS):
            damp += self.ev.laugh_weight
        if "!" in said and not frames_only:
            damp += self.ev.exclaim_weight
        return damp

    def framed_by(self, name: str, w0: int, w1: int) -> bool:
        """The dampener *name* ("media"...) is in the token text [w0, w1)."""
        window = self.norm.text[w0:w1]
        return any(d.name == name and d.pattern.search(window) for d in self.ev.dampeners)

    def windows(self) -> list[Weighed]:
        """Every window whose evidence reaches a tier: each sentence, and runs of up to
        MAX_WINDOW_SENTENCES short ones where together they say more than any one of
        them alone (so a reply quotes the sentence that says it, not its neighbours)."""
        if not self.hits:
            return []
        text = self.norm.text
        sentences = _sentences(text)
        per_sentence: list[list[_Hit]] = [[] for _ in sentences]
        for hit in self.hits:
            per_sentence[_index_of(sentences, hit.start)].append(hit)
        single = [self._window(hits, s0, s1) if hits else None
                  for hits, (s0, s1) in zip(per_sentence, sentences, strict=True)]
        found = [w for w in single if w is not None]
        for i, (s0, _) in enumerate(sentences):
            hits = list(per_sentence[i])
            for j in range(i + 1, min(i + MAX_WINDOW_SENTENCES, len(sentences))):
                short = all(_words_in(text, *sentences[k]) <= self.ev.pair_max_words
                            for k in (j - 1, j))
                if not (short and per_sentence[j]):
                    break
                hits += per_sentence[j]
                w = self._window(hits, s0, sentences[j][1])
                alone = max((_RANK[x.tier] for x in single[i:j + 1] if x is not None),
                            default=0)
                if w is not None and _RANK[w.tier] > alone:
                    found.append(w)
        return found

    def _window(self, hits: list[_Hit], w0: int, w1: int) -> Weighed | None:
        ev = self.ev
        by_family: dict[str, list[_Hit]] = {}
        for hit in hits:
            by_family.setdefault(hit.cue.family, []).append(hit)
        totals: dict[About, float] = {"self": 0.0, "others": 0.0}
        contributions: list[tuple[float, str, _Hit]] = []
        for name, fam_hits in by_family.items():
            distinct = {id(h.cue): h for h in fam_hits}  # a cue counts once
            ranked = sorted(distinct.values(), key=lambda h: (-h.cue.weight, h.start))
            extra = sum(h.cue.weight for h in ranked[1:]) * ACCUMULATION
            fam_score = ranked[0].cue.weight + min(extra, FAMILY_BONUS_CAP)
            totals[ev.families[name].about] += fam_score
            contributions.append((fam_score, name, ranked[0]))
        about: About = "self" if totals["self"] >= totals["others"] else "others"
        mine = sorted((c for c in contributions if ev.families[c[1]].about == about),
                      key=lambda c: (-c[0], c[1]))
        if all(ev.families[c[1]].modifier for c in mine):
            return None  # wishing, "again", "tonight", feeling low: only beside something
        score = totals[about] + self.damping(w0, w1, about, [(h.start, h.end) for h in hits])
        if score < ev.check_in:
            return None
        strong = sum(1 for c in mine if ev.families[c[1]].strong)
        tier: Literal["crisis", "check_in"] = (
            "crisis" if score >= ev.crisis and strong >= 2 else "check_in")
        lead = next((c for c in mine if ev.families[c[1]].strong), mine[0])
        return Weighed(tier, about, ev.families[lead[1]].kind, round(score, 2),
                       tuple(c[1] for c in mine), lead[2].start, lead[2].end, w0, w1)


def _negated(norm: Normalized, start: int, ev: Evidence) -> bool:
    """A negator shortly before the cue, with only auxiliaries between ("I have never
    wanted to die", "I don't have any thoughts of suicide")."""
    i = norm.token_at(start) - 1
    for _ in range(NEGATION_WINDOW_WORDS):
        if i < 0:
            return False
        tok = norm.tokens[i]
        if tok in ev.negators:
            return True
        if i > 0 and f"{norm.tokens[i - 1]} {tok}" in ev.negators:
            return True
        if tok not in ev.negation_gap:
            return False
        i -= 1
    return False


def _about_someone_else(norm: Normalized, start: int, end: int, ev: Evidence) -> bool:
    """The hit's clause is about another person: the nearest person word before it is
    someone else's and the hit does not name the writer ("grandma died", "she cuts")."""
    if any(tok in ev.self_words for tok in norm.text[start:end].split()):
        return False
    i = norm.token_at(start) - 1
    looked = 0
    while i >= 0 and looked < SUBJECT_LOOKBACK_WORDS:
        tok = norm.tokens[i]
        if tok in (SENTENCE_MARK, CLAUSE_MARK):
            return False
        if tok in ev.self_words:
            return False
        if tok in ev.other_words:
            return True
        i -= 1
        looked += 1
    return False


def _sentences(text: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    start = 0
    mark = f" {SENTENCE_MARK} "
    while True:
        at = text.find(mark, start)
        if at < 0:
            out.append((start, len(text)))
            return out
        out.append((start, at + 1))
        start = at + len(mark)


def _index_of(sentences: list[tuple[int, int]], offset: int) -> int:
    for i, (s0, s1) in enumerate(sentences):
        if s0 <= offset < s1:
            return i
    return len(sentences) - 1


def _words_in(text: str, start: int, end: int) -> int:
    return len(text[start:end].split())
