"""The risk rules: concepts and patterns from the data files, compiled once.

Rules are written over the normalised token stream (``normalize``) in a small
pattern language, one element per space-separated word of a pattern:

=========  ==============================================================
``word``   that word; ``a|b|c`` one of them; ``_`` joins words of a phrase
           (``in_front_of``); ``*`` ends a word with any letters (``kill*``)
``@NAME``  any phrase of the concept NAME (``concepts.json``)
``~N``     up to N words that are not a boundary and not someone else
           (``@OTHER``: "he", "they", "my friend"...), so "I want him to die"
           is not "I want to die"
``~~N``    up to N words, anything but a sentence boundary
``^``      the start of a clause, after up to three openers ("and", "honestly",
           "been"...): where a journal leaves the "I" out ("want to die")
``<S>``    the person themself as subject: ``^``, or ``@I`` and up to three
           words that are not someone else ("i really just", "part of me")
``$``      the end of a clause
``X?``     X is optional; ``!X`` marks X as the head a negation must precede
           ("I would never kill myself")
=========  ==============================================================

A rule (``rules.json``) names what it is *about* (``self`` or ``others``), its
*kind* (a C-SSRS category or a kind of harm), its *tier* (``crisis``: clear
risk, ``check_in``: possible risk), and patterns: ``when`` (any may match),
``unless`` (none may match in the same sentence), ``with`` (one must match
somewhere in the entry), ``crisis_with`` (raises a check-in to a crisis when
one matches in the entry), and the ``contexts`` that may discount a match
(``detect``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any, Literal

from ..lexicon import lexicon
from .evidence import Evidence, EvidenceError, compile_evidence
from .learned import LearnedLexicon, compile_lexicon
from .normalize import Vocabulary, english_near_words

About = Literal["self", "others"]
Tier = Literal["crisis", "check_in"]
TIERS: tuple[Tier, ...] = ("crisis", "check_in")
CONTEXTS = frozenset({"hypothetical", "media", "past", "accident", "negation"})
MAX_OPENERS = 3
MAX_SUBJECT_GAP = 3

_WORD_RE = re.compile(r"[\w'*\-]+")


class RuleError(ValueError):
    """A rule or concept in the data files cannot be compiled."""


@dataclass(frozen=True)
class Rule:
    id: str
    about: About
    kind: str
    tier: Tier
    when: tuple[re.Pattern[str], ...]
    # per pattern of `when`: words one of which must be in the entry for it to match
    # (None: no such word known); lets most entries skip most patterns
    anchors: tuple[frozenset[str] | None, ...]
    unless: tuple[re.Pattern[str], ...]
    with_: tuple[re.Pattern[str], ...]
    crisis_with: tuple[re.Pattern[str], ...]
    contexts: frozenset[str]
    needs_self: bool = False  # the sentence must name the person (I, me, my) somewhere


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    vocabulary: Vocabulary
    negators: frozenset[str]
    aux: frozenset[str]
    hypothetical: tuple[re.Pattern[str], ...]
    questions: tuple[re.Pattern[str], ...]
    affirmed: re.Pattern[str]
    hyperbole: tuple[re.Pattern[str], ...]
    idioms: tuple[re.Pattern[str], ...]
    laughing: re.Pattern[str]
    media: re.Pattern[str]
    past: re.Pattern[str]
    resolved: re.Pattern[str]
    current: re.Pattern[str]
    accident: re.Pattern[str]
    self_ref: re.Pattern[str]
    trivial: re.Pattern[str]
    evidence: Evidence | None = None  # the scored layer (``evidence``), if any
    lexicon: LearnedLexicon | None = None  # the learned lexicon (``learned``), if any


def _phrase(phrase: str) -> str:
    words = phrase.replace("_", " ").split()
    if not words:
        raise RuleError(f"empty phrase in {phrase!r}")
    out = []
    for w in words:
        if not _WORD_RE.fullmatch(w):
            raise RuleError(f"not a word: {w!r} (in {phrase!r})")
        out.append(re.escape(w.rstrip("*")) + (r"[^ |,]*" if w.endswith("*") else ""))
    return " ".join(out)


def _alternation(phrases: Sequence[str]) -> str:
    ordered = sorted(set(phrases), key=lambda p: (-len(p), p))
    return "(?:" + "|".join(_phrase(p) for p in ordered) + ")"


class _Compiler:
    def __init__(self, concepts: Mapping[str, Sequence[str]]) -> None:
        self.concepts = concepts
        self.common = lexicon().stopwords
        self.other = self.concept("OTHER")
        self.gap_word = rf"(?:(?!{self.other} )[^ |]+ )"
        openers = self.concept("OPENER")
        self.clause_start = rf"(?:^|(?<=\| )|(?<=, ))(?:{openers} ){{0,{MAX_OPENERS}}}"
        subject_gap = rf"(?:(?!{self.other} )[^ |,]+ ){{0,{MAX_SUBJECT_GAP}}}"
        self.subject = rf"(?:{self.clause_start}|{self.concept('I')} {subject_gap})"

    def concept(self, name: str) -> str:
        try:
            return _alternation(self.concepts[name])
        except KeyError:
            raise RuleError(f"unknown concept @{name}") from None

    def element(self, raw: str) -> tuple[str, bool]:
        head = raw.startswith("!")
        core = raw[1:] if head else raw
        optional = core.endswith("?") and len(core) > 1
        if optional:
            core = core[:-1]
        if core == "^":
            frag = self.clause_start
        elif core == "$":
            frag = r"(?=[|,] |$)"
        elif core == "<S>":
            frag = self.subject
        elif core.startswith("~~") and core[2:].isdigit():
            frag = rf"(?:[^ |]+ ){{0,{int(core[2:])}}}"
        elif core.startswith("~") and core[1:].isdigit():
            frag = rf"{self.gap_word}{{0,{int(core[1:])}}}"
        else:
            alts = core.split("|")
            concepts = [self.concept(a[1:]) for a in alts if a.startswith("@")]
            words = [a for a in alts if not a.startswith("@") and a != "$"]
            frag = "(?:" + "|".join([*concepts, *([_alternation(words)] if words else [])])
            frag += ") "
            if "$" in alts:  # "again|tonight|$": one of the words, or the clause ends here
                frag = rf"(?:{frag}|(?=[|,] |$))"
        if head:
            frag = f"(?P<head>{frag})"
        if optional:
            frag = f"(?:{frag})?"
        return frag, head

    def anchor(self, source: str) -> frozenset[str] | None:
        """The smallest set of words one of which any match of *source* must contain:
        the first words of the alternatives of its most selective required element."""
        best: frozenset[str] | None = None
        best_cost = (0, 0)
        for raw in source.split():
            firsts = self._firsts(raw)
            if firsts is not None:
                # fewest common words first ("want" narrows less than "suicide"), then fewest
                cost = (len(firsts & self.common), len(firsts))
                if best is None or cost < best_cost:
                    best, best_cost = firsts, cost
        return best

    def leading(self, source: str) -> frozenset[str] | None:
        """The tokens any match of *source* must begin with (its first element is a
        required word or concept), or None: then it is searched everywhere."""
        firsts = self._firsts(source.split()[0])
        return None if firsts is None else frozenset(w.split()[0] for w in firsts)

    def _firsts(self, raw: str) -> frozenset[str] | None:
        """The first words of the alternatives of the pattern element *raw*, or None when
        it is optional, a gap or a boundary, or one of its words ends with ``*``."""
        core = raw.lstrip("!")
        if core.endswith("?") or core in ("^", "$", "<S>") or core.startswith("~"):
            return None
        alts = core.split("|")
        if "$" in alts:
            return None
        firsts: set[str] = set()
        for alt in alts:
            phrases = self.concepts[alt[1:]] if alt.startswith("@") else [alt]
            for phrase in phrases:
                first = phrase.replace("_", " ").split()[0]
                if "*" in first:
                    return None
                firsts.add(first)
        return frozenset(firsts)

    def pattern(self, source: str) -> re.Pattern[str]:
        parts = []
        heads = 0
        for raw in source.split():
            try:
                frag, head = self.element(raw)
            except RuleError as exc:
                raise RuleError(f"{source!r}: {exc}") from None
            heads += head
            parts.append(frag)
        if heads > 1:
            raise RuleError(f"more than one head in {source!r}")
        try:
            return re.compile(r"(?:^|(?<= ))" + "".join(parts))
        except re.error as exc:
            raise RuleError(f"{source!r}: {exc}") from None

    def any_of(self, name: str) -> re.Pattern[str]:
        return re.compile(r"(?:^|(?<= ))" + self.concept(name) + " ")


def _words_of(
    concepts: Mapping[str, Sequence[str]], rules: Sequence[Mapping[str, Any]],
    evidence: Mapping[str, Any] | None = None,
) -> set[str]:
    """The words the rules (and the scored layer's cues) are written in: the vocabulary
    typos are corrected into."""
    words: set[str] = set()
    all_concepts = {**concepts, **(evidence or {}).get("concepts", {})}
    for phrases in all_concepts.values():
        for p in phrases:
            words.update(w.rstrip("*") for w in p.replace("_", " ").split())
    sources = [s for r in rules for key in ("when", "unless", "with", "crisis_with")
               for s in r.get(key, ())]
    if evidence is not None:
        sources += [src for fam in evidence["families"].values() for _, src in fam["cues"]]
    for source in sources:
        for element in source.split():
            if element[:1] in "@~^$<":
                continue
            for alt in element.strip("!?").split("|"):
                words.update(w.rstrip("*") for w in alt.split("_"))
    return {w for w in words if w.isalpha()}


def _read(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath(name).read_text("utf-8"))


def compile_rules(concepts: Mapping[str, Sequence[str]], raw: Mapping[str, Any],
                  english: frozenset[str], evidence: Mapping[str, Any] | None = None
                  ) -> RuleSet:
    """Compile *raw* (the ``rules.json`` object) over *concepts*, and *evidence* (the
    ``evidence.json`` object: the scored layer) if given. Raises RuleError."""
    c = _Compiler(concepts)
    rules: list[Rule] = []
    seen: set[str] = set()
    for r in raw["rules"]:
        rid = str(r["id"])
        if rid in seen:
            raise RuleError(f"two rules are called {rid!r}")
        seen.add(rid)
        about = r.get("about", "self")
        tier = r.get("tier", "crisis")
        if about not in ("self", "others") or tier not in TIERS:
            raise RuleError(f"{rid}: about must be self|others and tier crisis|check_in")
        contexts = frozenset(r.get("contexts", ("hypothetical", "media", "past", "negation")))
        if not contexts <= CONTEXTS:
            raise RuleError(f"{rid}: unknown context in {sorted(contexts - CONTEXTS)}")
        rules.append(
            Rule(
                id=rid,
                about=about,
                kind=str(r["kind"]),
                tier=tier,
                when=tuple(c.pattern(s) for s in r["when"]),
                anchors=tuple(c.anchor(s) for s in r["when"]),
                unless=tuple(c.pattern(s) for s in r.get("unless", ())),
                with_=tuple(c.pattern(s) for s in r.get("with", ())),
                crisis_with=tuple(c.pattern(s) for s in r.get("crisis_with", ())),
                contexts=contexts,
                needs_self=bool(r.get("needs_self", False)),
            )
        )
    ctx = raw["contexts"]
    vocabulary = Vocabulary.build(_words_of(concepts, raw["rules"], evidence), english)
    return RuleSet(
        rules=tuple(rules),
        vocabulary=vocabulary,
        negators=frozenset(concepts["NOT"]),
        aux=frozenset(concepts["AUX"]),
        hypothetical=tuple(c.pattern(s) for s in ctx["hypothetical"]),
        questions=tuple(c.pattern(s) for s in ctx["questions"]),
        affirmed=c.pattern(ctx["affirmed"]),
        hyperbole=tuple(c.pattern(s) for s in ctx["hyperbole"]),
        idioms=tuple(c.pattern(s) for s in ctx["idioms"]),
        laughing=c.any_of("LAUGH"),
        media=c.any_of("MEDIA"),
        past=c.any_of("TIME_PAST"),
        resolved=c.any_of("RESOLVED"),
        current=c.any_of("CURRENT"),
        accident=c.any_of("ACCIDENT"),
        self_ref=c.any_of("SELF_REF"),
        trivial=c.any_of("TRIVIAL"),
        evidence=None if evidence is None else _evidence(concepts, evidence),
    )


def _evidence(concepts: Mapping[str, Sequence[str]], raw: Mapping[str, Any]) -> Evidence:
    own = raw.get("concepts", {})
    clash = sorted(set(own) & set(concepts))
    if clash:
        raise RuleError(f"evidence.json redefines the concept @{clash[0]}")
    merged = {**concepts, **own}
    c = _Compiler(merged)
    try:
        return compile_evidence(raw, c.pattern, lambda name: merged[name], c.anchor, c.leading)
    except EvidenceError as exc:
        raise RuleError(str(exc)) from None


@cache
def rule_set() -> RuleSet:
    """The shipped rules, compiled on first use, with the learned lexicon."""
    return replace(base_rule_set(), lexicon=compile_lexicon(_read("learned.json")))


@cache
def base_rule_set() -> RuleSet:
    """The shipped rules and scored layer without the learned lexicon (which is built
    over the token stream they read: ``build_lexicon``)."""
    near = resources.files(__package__).joinpath("near_words.txt").read_text("utf-8")
    return compile_rules(_read("concepts.json"), _read("rules.json"), english_near_words(near),
                         _read("evidence.json"))
