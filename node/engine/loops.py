"""Loops: what happens, what the person does, how it leaves them.

``find_chains(analysis)`` reads one entry for :class:`Chain`s — a trigger
("Carol asked me to cover Saturday", a person, a feeling), a response (a
behaviour: "I said yes", "poured a whisky", "scrolled for two hours") and a
consequence ("exhausted", "ashamed", "lonely") — across its sentences, in the
order the person lived them. ``continue_chains(previous, analysis)`` carries a
chain of the entry before (written within ``MAX_LINK_HOURS``) that had no
consequence yet into this one, when this one opens with how it left them
("Head like a brick. Ashamed of myself."): loops across entries.

Theory of operation: the cues of ``data/loops.json`` are matched once over the
words (``cues.CueIndex``). Each response that is not negated ("I didn't
snap") looks back up to ``TRIGGER_WINDOW_SENTENCES`` sentences for the
nearest trigger — an event cue first, then a person, then a feeling named
just before it ("anxious, so I scrolled"), then a theme — and forward up to
``CONSEQUENCE_WINDOW_SENTENCES`` for the first consequence after it. A chain
needs its response and at least one of the other two. Pure, O(words).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from importlib import resources

from .analysis import Analysis, Span
from .cues import CueIndex
from .lexicon import phrase_tokens

TRIGGER_WINDOW_SENTENCES = 2
CONSEQUENCE_WINDOW_SENTENCES = 3
OPENING_SENTENCES = 2  # where a consequence carried over from the entry before is read
MAX_LINK_HOURS = 36
MAX_LINK = timedelta(hours=MAX_LINK_HOURS)
NEGATION_WINDOW_TOKENS = 3
MAX_CHAINS_PER_ENTRY = 6
MAX_CONSEQUENCES = 2
SHORT_ENTRY_TOKENS = 12  # below this the language guess of text.analyze is unreliable
SUBJECT_WINDOW_TOKENS = 3
_FIRST_PERSON = frozenset({"i", "i'm", "im", "i've", "ive", "i'd", "we", "we're", "me", "myself"})
_THIRD_PERSON = frozenset({"he", "she", "they", "he's", "she's", "they're", "it"})
_CAUSAL = frozenset({"after", "when", "because", "since", "cause", "cos"})

# A feeling family read as a consequence when no consequence cue names it better.
FAMILY_CONSEQUENCES: Mapping[str, str] = {
    "tiredness": "exhaustion", "loneliness": "loneliness", "anxiety": "anxiety",
    "fear": "anxiety", "sadness": "sadness", "anger": "anger", "shame": "shame",
    "envy": "envy", "calm": "calm",
}


@dataclass(frozen=True)
class Chain:
    """One lived loop in an entry. ``trigger`` is a node id (``event:request``,
    ``person:carol``, ``emotion:anxiety``, ``theme:money``) or ""; ``response`` is
    ``behaviour:<name>``; ``consequence`` a plain name ("exhaustion") or ""."""

    trigger: str
    response: str
    consequences: tuple[str, ...]  # at most MAX_CONSEQUENCES, in text order
    span: Span  # from the first step found to the last


@dataclass(frozen=True)
class LoopLexicon:
    triggers: CueIndex
    responses: CueIndex
    consequences: CueIndex
    negators: tuple[tuple[str, ...], ...]
    weak_triggers: frozenset[str]


@cache
def loop_lexicon() -> LoopLexicon:
    raw = json.loads(
        resources.files(f"{__package__}.data").joinpath("loops.json").read_text("utf-8")
    )

    def index(section: str) -> CueIndex:
        return CueIndex(((cue, name) for name, cues in raw[section].items() for cue in cues),
                        inflect=True)

    return LoopLexicon(
        triggers=index("triggers"),
        responses=index("responses"),
        consequences=index("consequences"),
        negators=tuple(phrase_tokens(p) for p in raw["negated_by"]),
        weak_triggers=frozenset(raw.get("weak_triggers", ())),
    )


@dataclass(frozen=True)
class _Step:
    first: int  # token index
    end: int
    name: str
    rank: int = 0  # triggers: lower is better (event, person, feeling, theme)


class _Entry:
    def __init__(self, a: Analysis, lex: LoopLexicon) -> None:
        self.a = a
        self.lex = lex
        self.norms = tuple(t.norm for t in a.tokens)
        self.sentence = tuple(t.sentence for t in a.tokens)
        starts = {t.start: i for i, t in enumerate(a.tokens)}
        self.person_tokens = {starts[sp.start] for p in a.people for sp in p.spans
                              if sp.start in starts}
        self.responses = [
            _Step(i, i + n, f"behaviour:{name}")
            for i, n, name in lex.responses.find_all(self.norms)
            if not self._negated(i) and not self._someone_else(i)
        ]
        taken = {k for s in self.responses for k in range(s.first, s.end)}
        self.triggers = [
            _Step(i, i + n, f"event:{name}", 1 if name in lex.weak_triggers else 0)
            for i, n, name in lex.triggers.find_all(self.norms)
            if i not in taken
        ]
        for p in a.people:
            for sp in p.spans:
                if sp.start in starts:
                    self.triggers.append(_Step(starts[sp.start], starts[sp.start] + 1,
                                               f"person:{p.key}", 1))
        for f in a.named_feelings:
            if f.span.start in starts:
                i = starts[f.span.start]
                self.triggers.append(_Step(i, i + 1, f"emotion:{f.family}", 2))
        for t in a.themes:
            for sp in t.spans:
                if sp.start in starts:
                    i = starts[sp.start]
                    self.triggers.append(_Step(i, i + 1, f"theme:{t.name}", 3))
        self.consequences = [
            _Step(i, i + n, name)
            for i, n, name in lex.consequences.find_all(self.norms)
            if i not in taken and not self._negated(i)
        ]
        cue_starts = {s.first for s in self.consequences}
        for f in a.named_feelings:
            name = FAMILY_CONSEQUENCES.get(f.family)
            at = starts.get(f.span.start)
            if name is not None and at is not None and at not in cue_starts and at not in taken:
                self.consequences.append(_Step(at, at + 1, name))
        self.consequences.sort(key=lambda s: s.first)

    def _someone_else(self, i: int) -> bool:
        """Whether the act at token *i* is someone else's ("he went quiet", "Dani said
        nothing"): the nearest subject before it, in its sentence, is not the person."""
        for k in range(i - 1, max(-1, i - SUBJECT_WINDOW_TOKENS - 1), -1):
            if self.sentence[k] != self.sentence[i]:
                return False
            if self.norms[k] in _FIRST_PERSON:
                return False
            if self.norms[k] in _THIRD_PERSON or k in self.person_tokens:
                return True
        return False

    def _negated(self, i: int) -> bool:
        for neg in self.lex.negators:
            n = len(neg)
            for k in range(max(0, i - NEGATION_WINDOW_TOKENS), i):
                same_sentence = self.sentence[k] == self.sentence[i]
                if self.norms[k : k + n] == neg and k + n <= i and same_sentence:
                    return True
        return False

    def span(self, first: int, end: int) -> Span:
        toks = self.a.tokens
        return self.a.span(toks[first].start, toks[end - 1].end)

    def sentence_end(self, i: int) -> int:
        k = i
        while k < len(self.norms) and self.sentence[k] == self.sentence[i]:
            k += 1
        return k

    def trigger_for(self, r: _Step) -> _Step | None:
        s = self.sentence[r.first]
        before = [
            t for t in self.triggers
            if t.end <= r.first and s - self.sentence[t.first] <= TRIGGER_WINDOW_SENTENCES
            and (t.rank < 2 or self.sentence[t.first] >= s - 1)  # a feeling: just before
        ]
        because = next((k for k in range(r.end, self.sentence_end(r.first))
                        if self.norms[k] in _CAUSAL), None)
        same_after = [
            t for t in self.triggers
            if t.first >= r.end and self.sentence[t.first] == s
            and (t.rank < 2 or (because is not None and t.first > because))
        ]
        pool = before or same_after
        if not pool:
            return None
        return min(pool, key=lambda t: (t.rank, abs(r.first - t.first)))

    def consequences_for(self, r: _Step, nxt: _Step | None) -> list[_Step]:
        s = self.sentence[r.first]
        out: list[_Step] = []
        for c in self.consequences:
            if c.first < r.end:
                continue
            if self.sentence[c.first] - s > CONSEQUENCE_WINDOW_SENTENCES:
                break
            if (nxt is not None and nxt.name != r.name and c.first >= nxt.first
                    and self.sentence[nxt.first] > s):
                break  # after the next response's sentence, it is that one's consequence
            if all(c.name != o.name for o in out):
                out.append(c)
            if len(out) >= MAX_CONSEQUENCES:
                break
        return out

    def chains(self) -> list[Chain]:
        out: list[Chain] = []
        seen: set[str] = set()
        for k, r in enumerate(self.responses):
            if r.name in seen:
                continue
            nxt = self.responses[k + 1] if k + 1 < len(self.responses) else None
            t, cs = self.trigger_for(r), self.consequences_for(r, nxt)
            if t is None and not cs:
                continue
            seen.add(r.name)
            steps = [x for x in (t, r, *cs) if x is not None]
            first = min(x.first for x in steps)
            end = max(x.end for x in steps)
            out.append(Chain(t.name if t else "", r.name, tuple(c.name for c in cs),
                             self.span(first, end)))
            if len(out) >= MAX_CHAINS_PER_ENTRY:
                break
        return out

    def opening_consequences(self) -> list[_Step]:
        """How the entry opens, when it opens with consequences and no response before them."""
        first_response = self.responses[0].first if self.responses else len(self.norms)
        out: list[_Step] = []
        for c in self.consequences:
            if self.sentence[c.first] >= OPENING_SENTENCES or c.first > first_response:
                break
            if all(c.name != o.name for o in out):
                out.append(c)
            if len(out) >= MAX_CONSEQUENCES:
                break
        return out


def _readable(analysis: Analysis) -> bool:
    """English, or too short to tell (telegraphic lines: "Head pounding, full of regret.")."""
    return bool(analysis.tokens) and (
        analysis.english or len(analysis.tokens) < SHORT_ENTRY_TOKENS
    )


def find_chains(analysis: Analysis) -> list[Chain]:
    """The loops lived in one entry, in text order. English entries only."""
    if not _readable(analysis):
        return []
    return _Entry(analysis, loop_lexicon()).chains()


def continue_chains(previous: Sequence[Chain], analysis: Analysis) -> list[Chain]:
    """Chains of the entry before that had no consequence, completed by how this one
    opens. The caller checks the two entries are close enough in time (``MAX_LINK``)."""
    open_chains = [c for c in previous if not c.consequences]
    if not open_chains or not _readable(analysis):
        return []
    entry = _Entry(analysis, loop_lexicon())
    cs = entry.opening_consequences()
    if not cs:
        return []
    span = entry.span(cs[0].first, cs[-1].end)
    return [Chain(ch.trigger, ch.response, tuple(c.name for c in cs), span)
            for ch in open_chains]
