"""Finding risk in an entry: the rules (``rules``) over the token stream (``normalize``).

Theory of operation. The entry is normalised once. Each rule's patterns are
searched in the whole token stream (a gap never crosses a sentence end); a
match counts only if it survives, in this order:

1. the rule's ``unless`` patterns, searched in the match's sentence (idioms,
   games, another object: "rather die than", "beat me at chess", "end it with");
2. its ``with`` patterns, one of which must occur somewhere in the entry;
3. the contexts the rule admits:
   - *negation*: a negator ("not", "never", "no longer") within three words
     before the head, with only auxiliaries between ("I would never kill
     myself", "I'm not going to hurt myself");
   - *hypothetical*: a condition or a question about someone else earlier in
     the sentence ("if I ever felt", "what to do if someone"), or a question
     someone asked ("the doctor asked whether...") unless the entry answers yes;
   - *media*: a song, film, book, article... shortly before the match, or the
     match inside quotation marks in a sentence that names one;
   - *accident*: cooking, sport, a knife that slipped ("cut myself while cooking");
   - *past*: a time long gone in the sentence ("years ago", "in high school")
     with nothing current ("again", "tonight", "the urge is back"): resolved
     elsewhere in the entry ("I'm so glad I stayed") it is dropped, otherwise a
     crisis becomes a check-in.

Figures of speech about trivial things ("this commute makes me want to die")
lower the person's own risk to a check-in, or drop it when said laughing
("..., lol"). Surviving matches are :class:`Finding`s; :func:`assess` returns all of them
and the strongest — a crisis before a check-in, the person's own risk before
harm from others, then the earliest — as :class:`Assessment.top`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from .evidence import Reading
from .learned import LEARNED_NEGATION_GAP, LearnedLexicon, features
from .normalize import SENTENCE_MARK, Normalized, normalize
from .rules import About, Rule, RuleSet, Tier, rule_set

NEGATION_WINDOW_WORDS = 6  # "I don't have any thoughts of self harm"
MEDIA_WINDOW_WORDS = 7
MAX_ASSESSED_CHARS = 50_000  # the whole of any plausible entry; beyond it, the start
RECENT_ASSESSMENTS = 64
REPORTER_CHARS = 80  # how far before a quotation its speaker is looked for
_REPORTED_RE = re.compile(
    r"(?P<who>\b[a-z]+(?: [a-z]+)?) (?:said|says|say|told me|tells me|asked|asks|screamed|"
    r"yelled|shouted|wrote|writes|texted|goes|went|replied|posted|sang|sings)\W*$"
)
# a habit told as past ("I used to", "I would ... back then"): its frequency is the past's
_HABITUAL_PAST_RE = re.compile(r"\bused to\b")
_FREQUENCY_RE = re.compile(r"\b(?:every (?:day|night|week|morning)|constantly|all the time)\b")
# rules whose match is about the writer whatever the clause's subject ("they'd be
# better off without me")
_ABOUT_THE_WRITER_KINDS = frozenset({"burden"})
_MEDIA_BREAKERS = frozenset({"now", "so", "then", "because", "and now", "but"})
_QUOTE_RE = re.compile(
    r"[\"“”«»]([^\"“”«»]{1,400})[\"“”«»]"  # double quotes
    r"|(?:^|(?<=\s))['‘]([^'‘’]{1,400})['’](?=\W|$)"  # single quotes, not apostrophes
)


@dataclass(frozen=True)
class Finding:
    """One rule that matched: what it is about, how clear, and where (original offsets)."""

    rule: str
    about: About
    kind: str
    tier: Tier
    start: int
    end: int
    sentence_start: int
    sentence_end: int


@dataclass(frozen=True)
class Assessment:
    findings: tuple[Finding, ...]

    @property
    def top(self) -> Finding | None:
        if not self.findings:
            return None
        return min(
            self.findings,
            key=lambda f: (f.tier != "crisis", f.about != "self", f.start),
        )

    @property
    def tier(self) -> Tier | None:
        top = self.top
        return top.tier if top is not None else None


class _Entry:
    """One entry's token stream and what the contexts need to know about it."""

    def __init__(self, text: str, rules: RuleSet) -> None:
        self.original = text
        self.rules = rules
        self.norm: Normalized = normalize(text, rules.vocabulary)
        self.text = self.norm.text
        self.words = frozenset(self.norm.tokens)
        self.reading = (None if rules.evidence is None
                        else Reading(self.norm, text, rules.evidence))
        self.quotes = [
            (m.start(1) if m.group(1) is not None else m.start(2),
             m.end(1) if m.group(1) is not None else m.end(2))
            for m in _QUOTE_RE.finditer(text)
        ]

    def sentence(self, at: int) -> tuple[int, int]:
        """Offsets in ``text`` of the sentence around offset *at*."""
        start = self.text.rfind(f"{SENTENCE_MARK} ", 0, at)
        start = 0 if start < 0 else start + 2
        end = self.text.find(f" {SENTENCE_MARK} ", at)
        return start, (len(self.text) if end < 0 else end + 1)

    def words_before(self, at: int, count: int) -> list[str]:
        """Up to *count* tokens before the token at offset *at*, nearest first, within
        the clause."""
        out: list[str] = []
        i = self.norm.token_at(at) - 1
        while i >= 0 and len(out) < count:
            tok = self.norm.tokens[i]
            if tok in (SENTENCE_MARK, ","):
                break
            out.append(tok)
            i -= 1
        return out

    # ------------------------------------------------------------------ contexts

    def negated(self, head_start: int) -> bool:
        before = self.words_before(head_start, NEGATION_WINDOW_WORDS + 1)
        for k, word in enumerate(before[: NEGATION_WINDOW_WORDS]):
            pair = f"{before[k + 1]} {word}" if k + 1 < len(before) else ""
            if word in self.rules.negators or pair in self.rules.negators:
                return all(w in self.rules.aux for w in before[:k])
        return False

    def hypothetical(self, s_start: int, s_end: int, m_start: int) -> bool:
        """A condition, or a question someone else asked, that begins before the match."""
        sentence = self.text[s_start:s_end]
        at = m_start - s_start
        if any((h := p.search(sentence)) is not None and h.start() <= at
               for p in self.rules.hypothetical):
            return True
        return self.asked(s_start, s_end, m_start)

    def asked(self, s_start: int, s_end: int, m_start: int) -> bool:
        """A question someone else asked ("the doctor asked whether..."), unless the entry
        answers yes."""
        if self.rules.affirmed.search(self.text) is not None:
            return False  # "she asked if I wanted to die, and I said yes"
        sentence = self.text[s_start:s_end]
        at = m_start - s_start
        return any((h := p.search(sentence)) is not None and h.start() <= at
                   for p in self.rules.questions)

    def hyperbole(self, s_start: int, s_end: int) -> str | None:
        """``"joke"`` for a figure of speech said laughing, ``"figure"`` without the laugh."""
        sentence = self.text[s_start:s_end]
        if any(p.search(sentence) for p in self.rules.idioms):
            return "joke"  # "killing myself laughing", "kill me now"
        laughing = self.rules.laughing.search(sentence) is not None
        if any(p.search(sentence) for p in self.rules.hyperbole):
            return "joke" if laughing else "figure"
        if laughing:  # "want to die lol": a joke over something small, or a check-in
            return "joke" if self.rules.trivial.search(sentence) is not None else "figure"
        return None

    def media(self, s_start: int, s_end: int, m_start: int, m_end: int) -> bool:
        before = self.words_before(m_start, MEDIA_WINDOW_WORDS)
        phrase = " ".join(reversed(before)) + " "
        found = self.rules.media.search(phrase)
        if found is not None:
            after = phrase[found.end():].split()
            if not any(w in _MEDIA_BREAKERS for w in after):
                return True
        return self.quoted_media(s_start, s_end, m_start, m_end)

    def quoted_media(self, s_start: int, s_end: int, m_start: int, m_end: int) -> bool:
        """The match is inside quotation marks in a sentence that names a song, a book..."""
        o_start, o_end = self.norm.original_span(m_start, m_end)
        quoted = any(q0 <= o_start and o_end <= q1 for q0, q1 in self.quotes)
        return quoted and self.rules.media.search(self.text[s_start:s_end]) is not None

    def accident(self, s_start: int, s_end: int) -> bool:
        return self.rules.accident.search(self.text[s_start:s_end]) is not None

    def past(self, s_start: int, s_end: int) -> str | None:
        """``"resolved"``, ``"past"`` or None for the sentence at [s_start, s_end)."""
        sentence = self.text[s_start:s_end]
        if self.rules.past.search(sentence) is None:
            return None
        # the words that place it in the past are not also a sign it is current
        # ("back when I was depressed" is not "it is back"), nor is how often it was
        # ("I used to want to die every day")
        rest = self.rules.past.sub(" ", sentence)
        if _HABITUAL_PAST_RE.search(sentence) is not None:
            rest = _FREQUENCY_RE.sub(" ", rest)
        if self.rules.current.search(rest) is not None:
            return None
        resolved = self.rules.resolved.search(self.text) is not None
        return "resolved" if resolved else "past"

    def reported(self, start: int, end: int) -> bool:
        """The match is inside quotation marks that someone else said or wrote ("my
        daughter said \"I want to die\" because...")."""
        last = self.norm.token_at(max(start, end - 1))  # the risk word a match ends with
        o_start, o_end = self.norm.spans[last]
        for q0, q1 in self.quotes:
            if q0 <= o_start and o_end <= q1:
                before = self.original[max(0, q0 - REPORTER_CHARS):q0].lower()
                said = _REPORTED_RE.search(before)
                if said is not None and said.group("who").split()[-1] != "i":
                    return True
        return False

    def in_context(self, rule: Rule, start: int, end: int, s_start: int, s_end: int,
                   tier: Tier) -> Tier | None:
        """A rule's finding judged with the scored layer's reading of its sentence:
        someone else's experience, an idiom running through the match, a sentence framed
        as media, a profession, sport, a game or cooking, or (for an uncertain match)
        any benign context the scored layer knows: laughing, a trivial object..."""
        assert self.reading is not None
        ev = self.reading.ev
        if (rule.about == "self" and rule.kind not in _ABOUT_THE_WRITER_KINDS
                and self.reading.someone_else(start, end)):
            return None
        if self.reading.idiom(start, end) or (  # a figure of speech runs through the match
                rule.about == "others" and self.reading.idiom(s_start, s_end)):  # or explains it
            # ("scared to go home, my flatmate will kill me for eating her cheese")
            if "check_in" in (tier, rule.tier):  # uncertain before the entry raised it
                return None
            tier = "check_in"
        # a clear match is only damped by a frame (media, a profession, a game...); an
        # uncertain one by any benign context, as the scored layer's windows are, read
        # with the sentences either side when they are short ("I'm done! Submitted the
        # thesis.", "Exam season. I'm so done, I want to sleep for a year.")
        w_start, w_end = s_start, s_end
        if tier == "check_in":
            n_start, n_end = self.sentence(min(len(self.text) - 1, s_end + 2))
            if n_start > s_start and len(self.text[n_start:n_end].split()) <= ev.pair_max_words:
                w_end = n_end
            p_start, p_end = self.sentence(max(0, s_start - 3))
            if p_start < s_start and len(self.text[p_start:p_end].split()) <= ev.pair_max_words:
                w_start = p_start
        # the word a match ends on is the risk it names ("make it to Christmas", "walk
        # into traffic"): not also its benign frame; the words before it may be
        last = self.norm.starts[self.norm.token_at(max(start, end - 1))]
        damp = self.reading.damping(w_start, w_end, rule.about, [(last, end)],
                                    frames_only=tier == "crisis", laughing_counts=False)
        if damp <= ev.rule_drop or (tier == "check_in" and damp <= ev.rule_soften):
            return None
        return "check_in" if damp <= ev.rule_soften else tier

    # ------------------------------------------------------------------ matching

    def findings(self, rule: Rule) -> Iterator[Finding]:
        patterns = [
            p for p, anchor in zip(rule.when, rule.anchors, strict=True)
            if anchor is None or not anchor.isdisjoint(self.words)
        ]  # the others need a word that is not in the entry
        if not patterns or (rule.with_ and not any(p.search(self.text) for p in rule.with_)):
            return
        for pattern in patterns:
            pos = 0
            while (m := pattern.search(self.text, pos)) is not None:
                finding = self.judge(rule, m)
                if finding is not None:
                    yield finding
                    return
                pos = self._next_token(m.start())

    def _next_token(self, offset: int) -> int:
        nxt = self.text.find(" ", offset) + 1
        return nxt if nxt > 0 else len(self.text)

    def judge(self, rule: Rule, m: re.Match[str]) -> Finding | None:
        start, end = m.start(), m.end() - 1
        while end > start and self.text[end - 1] == " ":
            end -= 1
        s_start, s_end = self.sentence(start)
        sentence = self.text[s_start:s_end]
        if any(p.search(sentence) for p in rule.unless):
            return None
        if rule.needs_self and self.rules.self_ref.search(sentence) is None:
            return None
        ctx = rule.contexts
        head = m.start("head") if "head" in m.re.groupindex and m.group("head") else None
        if "negation" in ctx and head is not None and self.negated(head):
            return None
        if "hypothetical" in ctx and self.hypothetical(s_start, s_end, start):
            return None
        if "media" in ctx and self.media(s_start, s_end, start, end):
            return None
        if "accident" in ctx and self.accident(s_start, s_end):
            return None
        tier = rule.tier
        if tier == "check_in" and any(p.search(self.text) for p in rule.crisis_with):
            tier = "crisis"
        if rule.about == "self":
            figure = self.hyperbole(s_start, s_end)
            if figure == "joke":
                return None
            if figure == "figure":
                tier = "check_in"
        if "past" in ctx:
            when = self.past(s_start, s_end)
            if when == "resolved":
                return None
            if when == "past":
                tier = "check_in"
        if self.reported(start, end):
            return None
        if self.reading is not None:
            judged = self.in_context(rule, start, end, s_start, s_end, tier)
            if judged is None:
                return None
            tier = judged
        o_start, o_end = self.norm.original_span(start, end)
        so_start, so_end = self.norm.original_span(s_start, max(s_start + 1, s_end - 1))
        return Finding(rule.id, rule.about, rule.kind, tier, o_start, o_end, so_start, so_end)


def assess(text: str, rules: RuleSet | None = None) -> Assessment:
    """Every risk the rules find in *text*, judged in context. Pure and deterministic."""
    if rules is None:
        return _assess_shipped(text[:MAX_ASSESSED_CHARS])
    return _assess(text[:MAX_ASSESSED_CHARS], rules)


@lru_cache(maxsize=RECENT_ASSESSMENTS)
def _assess_shipped(text: str) -> Assessment:
    # one reflection is assessed by the mirrorback, the analysis and the mood in turn
    return _assess(text, rule_set())


def _weighed(entry: _Entry, rules: RuleSet) -> Iterator[Finding]:
    """The scored layer's windows (``evidence``) as findings, judged in the contexts the
    rules are that its own dampeners do not cover: reported speech, a question someone
    else asked, words from a book or a song, a figure of speech, a past."""
    assert rules.evidence is not None
    assert entry.reading is not None
    for w in entry.reading.windows():
        s_start, s_end = entry.sentence(w.start)
        if entry.reported(w.start, w.end) or entry.asked(s_start, s_end, w.start):
            continue
        if (entry.media(s_start, s_end, w.start, w.end)  # "the book opens with '...'"
                and entry.reading.framed_by("media", s_start, s_end)):
            continue
        tier = w.tier
        if w.about == "self":
            figure = entry.hyperbole(s_start, s_end)
            if figure == "joke":
                continue
            if figure == "figure":
                tier = "check_in"
        when = entry.past(s_start, s_end)
        if when == "resolved":
            continue
        if when == "past":
            tier = "check_in"
        o_start, o_end = entry.norm.original_span(w.start, w.end)
        so_start, so_end = entry.norm.original_span(
            w.window_start, max(w.window_start + 1, w.window_end - 1))
        yield Finding(f"evidence:{'+'.join(w.families)}", w.about, w.kind, tier,
                      o_start, o_end, so_start, so_end)


def _learned(entry: _Entry, lexicon: LearnedLexicon) -> Finding | None:
    """A check-in where the learned lexicon's words (``learned``) add up, read after
    the contexts the rest of the net knows: the window the sum is highest in, if it
    reaches the threshold."""
    assert entry.reading is not None
    reading = entry.reading
    norm = entry.norm
    readable: list[tuple[int, int, int, int]] = []  # sentence, first and last+1 token
    for s0, s1 in reading.sentences():
        if (entry.past(s0, s1) is not None or entry.hyperbole(s0, s1) is not None
                or entry.asked(s0, s1, s1) or entry.reported(s0, max(s0 + 1, s1 - 1))
                or reading.damping(s0, s1, "self") < 0):
            readable.append((s0, s1, -1, -1))  # a past, a laugh, a frame: not read
            continue
        first = norm.token_at(s0)
        last = norm.token_at(max(s0, s1 - 1)) + 1
        readable.append((s0, s1, first, last))
    kept = [False] * len(norm.tokens)
    ev = reading.ev
    for _, _, first, last in readable:
        negating = False  # a negator's reach: over auxiliaries and articles to a word
        for i in range(max(0, first), max(0, last)):
            tok = norm.tokens[i]
            t0 = norm.starts[i]
            t1 = t0 + len(tok)
            negated = negating or tok in ev.negators
            if tok in ev.negators:
                negating = True
            elif negating and tok not in ev.negation_gap and tok not in LEARNED_NEGATION_GAP:
                negating = False  # "I'm not a burden": the word it reaches is not counted
            kept[i] = not (negated or reading.cancelled(t0, t1) or reading.negated(t0)
                           or reading.someone_else(t0, t1))
    best: tuple[float, int, int] | None = None
    short = reading.ev.pair_max_words
    for k, (s0, s1, first, last) in enumerate(readable):
        if first < 0:
            continue
        spans = [(s0, s1, first, last)]
        nxt = readable[k + 1] if k + 1 < len(readable) else None
        if (nxt is not None and nxt[2] >= 0 and last - first <= short
                and nxt[3] - nxt[2] <= short):
            spans.append((s0, nxt[1], first, nxt[3]))  # two short ones read together
        for w0, w1, a, b in spans:
            total = lexicon.score(features(norm.tokens[a:b], kept[a:b]))
            if total >= lexicon.threshold and (best is None or total > best[0]):
                best = (total, w0, w1)
    if best is None:
        return None
    _, w0, w1 = best
    o_start, o_end = norm.original_span(w0, max(w0 + 1, w1 - 1))
    return Finding("learned", "self", "learned", "check_in", o_start, o_end, o_start, o_end)


def _assess(text: str, rules: RuleSet) -> Assessment:
    entry = _Entry(text, rules)
    if not entry.text.strip():
        return Assessment(())
    found = [f for rule in entry.rules.rules for f in entry.findings(rule)]
    if rules.evidence is not None:
        found.extend(_weighed(entry, rules))
    if not found and rules.lexicon is not None and rules.evidence is not None:
        # last, and only where nothing else was found: a check-in, never lower
        learned = _learned(entry, rules.lexicon)
        if learned is not None:
            found.append(learned)
    found.sort(key=lambda f: (f.start, f.rule))
    return Assessment(tuple(found))
