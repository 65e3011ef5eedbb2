"""Tensions named by their poles: what two sides of an entry pull between.

``find_tensions(analysis)`` returns the :class:`TensionFinding`s of one entry,
each a pair of poles named as people name them ("work vs family", "scarcity vs
control", "connection vs solitude"), with the two stretches of text they were
read from.

Theory of operation. Every word of the entry is looked up once in the pole
cues of ``data/tensions.json`` (and people's roles: "my boss" is work, "my
mum" family). Then two kinds of evidence:

* **stated**: the person sets one side against the other — the structures of
  ``text.analyze`` ("part of me …, part of me …", "I should … but I want …",
  "X but Y"), and those read here: "torn between X and Y", "X or Y" ("X vs Y"), "choosing
  X over Y", "X without / instead of / rather than Y", "I want X … I (also)
  want Y", and "both" after two pulls. Each side is named by the pole its words
  point to; of several, the pair that people live as a tension
  (``opposites``) wins, and content poles beat the generic ones (duty, desire,
  self).
* **co-occurring**: an entry with a conflict cue (but, torn, both, guilt,
  can't …) names, in different clauses, both poles of a listed opposite — or,
  for the ``inherent`` pairs (pleasure vs discipline, control vs trust …), names
  both at all. It counts for less: the views need it to come back before they
  show it.

A finding is *resolving* when its sentences (or the one after) say the person
is through with it ("made my peace", "I decided", "both can be true"), which
the tension's status over time reads. Pure and deterministic, O(words).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from itertools import pairwise

from .analysis import Analysis, Span
from .cues import CueIndex
from .lexicon import lexicon
from .text import clause_starts

STATED = 2  # confidence of a tension the text sets against itself
CO_OCCURRING = 1  # both poles in one conflicted entry
MAX_COOCCURRING_PER_ENTRY = 2
MIN_COOCCURRING_WEIGHT = 2
MAX_OR_SIDE_TOKENS = 3  # "freedom or security": each side a few words at most
DESIRE_PAIR_SENTENCES = 1  # "I want X. I also want Y": at most this many sentences apart
MAX_INTENSITY = 5
_INTENSIFIERS = frozenset({"so", "really", "very", "completely", "totally", "always", "never"})
_BETWEEN_VERBS = frozenset({
    "torn", "caught", "choose", "choosing", "chose", "balance", "balancing", "pulled",
    "split", "stuck", "juggling", "juggle", "decide", "deciding", "choice",
})
_CHOICE_VERBS = ("choos", "chose", "pick", "priorit", "put", "putting")
_SET_AGAINST = {
    ("over",): "over", ("instead", "of"): "instead", ("rather", "than"): "rather",
    ("without",): "without", ("at", "the", "cost", "of"): "cost",
    ("at", "the", "price", "of"): "cost", ("at", "the", "expense", "of"): "cost",
    ("and", "not"): "not", ("and", "not", "a"): "not",  # "be a person and not a carer"
}
_CONFLICTED_FEELINGS = frozenset({"anxiety", "fear", "shame", "anger", "confusion", "sadness"})
_SUBORDINATORS = frozenset({"because", "cause", "cos", "since", "when", "while", "whereas"})
_SUBJECTS = frozenset({"i", "i'm", "im", "i've", "my", "he", "she", "we", "they", "his", "her",
                       "their", "our", "the"})
_SELF_WORDS = frozenset({"me", "myself", "mine"})
_PERSON_WORDS = frozenset({"her", "him", "them", "us", "she", "he", "they"})
_CONFLICT_RE = re.compile(
    r"\b(but|yet|although|though|however|torn|conflicted|both|juggl\w*|balanc\w*|choos\w*|"
    r"chose|sacrific\w*|instead|cost|guilt\w*|pull\w*|between|can't|cannot|can’t|struggl\w*|"
    r"tug|stretched|no room|no time|still|even|anyway|despite|trying|rather|wish|hate|"
    r"barely|price|paying|expense|sacrific\w*)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class TensionFinding:
    poles: tuple[str, str]  # in the lexicon's order ("scarcity", "control")
    left: Span
    right: Span
    confidence: int  # STATED or CO_OCCURRING
    resolving: bool
    intensity: int  # 1..MAX_INTENSITY

    @property
    def key(self) -> str:
        return f"{self.poles[0]} vs {self.poles[1]}"


@dataclass(frozen=True)
class PoleLexicon:
    cues: CueIndex
    order: Mapping[str, int]
    generic: frozenset[str]
    roles: Mapping[str, str]
    opposites: Mapping[frozenset[str], int]
    inherent: frozenset[frozenset[str]]  # pairs that pull wherever both are named
    near: Mapping[str, int]  # pole -> its group of near names ("work", "achievement")
    resolving: CueIndex

    def weight(self, a: str, b: str) -> int:
        return self.opposites.get(frozenset((a, b)), 0)

    def ordered(self, a: str, b: str) -> tuple[str, str]:
        first, second = sorted((a, b), key=lambda p: (self.order.get(p, len(self.order)), p))
        return first, second


@cache
def pole_lexicon() -> PoleLexicon:
    """``data/tensions.json``, parsed once."""
    raw = json.loads(
        resources.files(f"{__package__}.data").joinpath("tensions.json").read_text("utf-8")
    )
    poles: dict[str, list[str]] = raw["poles"]
    return PoleLexicon(
        # a pole's own name points to it too ("part of me fears scarcity")
        cues=CueIndex([(cue, pole) for pole, cues in poles.items() for cue in cues]
                      + [(pole, pole) for pole in poles if pole not in raw["generic"]]),
        order={pole: i for i, pole in enumerate(poles)},
        generic=frozenset(raw["generic"]),
        roles=dict(raw["roles"]),
        opposites={frozenset((a, b)): int(w) for a, b, w in raw["opposites"]},
        inherent=frozenset(frozenset(pair) for pair in raw.get("inherent", ())),
        near={pole: g for g, group in enumerate(raw.get("near", ())) for pole in group},
        resolving=CueIndex((p, "resolving") for p in raw["resolving"]),
    )


# --------------------------------------------------------------------------- reading one entry


@dataclass(frozen=True)
class _Hit:
    first: int  # token index
    end: int  # one past the last token
    pole: str
    by_role: bool = False  # "my dad" stands for family: weaker than the word "family"


class _Entry:
    def __init__(self, a: Analysis, lex: PoleLexicon) -> None:
        self.a = a
        self.lex = lex
        self.norms = tuple(t.norm for t in a.tokens)
        self.breaks = clause_starts(a)
        self.hits = [_Hit(i, i + n, pole) for i, n, pole in lex.cues.find_all(self.norms)]
        self.hits += self._role_hits()
        self.hits.sort(key=lambda h: h.first)
        self.clause_of = self._clauses()

    def _role_hits(self) -> list[_Hit]:
        out: list[_Hit] = []
        starts = {t.start: i for i, t in enumerate(self.a.tokens)}
        for p in self.a.people:
            if p.role is None:
                continue
            pole = self.lex.roles.get(p.role.split()[-1])
            if pole is None:
                continue
            for s in p.spans:
                i = starts.get(s.start)
                if i is not None:
                    out.append(_Hit(i, i + 1, pole, by_role=True))
        return out

    def _clauses(self) -> list[int]:
        """Clause number of each token: breaks, contrast cues, "because"-like words,
        and an "and" that starts a new subject ("… and my boss wants …")."""
        clause, out = -1, []
        contrast = lexicon().contrast
        n = self.norms
        for i in range(len(n)):
            joins = n[i] in _SUBORDINATORS or (
                n[i] == "and" and i + 1 < len(n) and n[i + 1] in _SUBJECTS
            )
            if self.breaks[i] or joins or contrast.match_at(n, i) is not None:
                clause += 1
            out.append(clause)
        return out

    # ------------------------------------------------------------------ spans and poles

    def span(self, first: int, end: int) -> Span:
        toks = self.a.tokens
        return self.a.span(toks[first].start, toks[end - 1].end)

    def sentence_range(self, s: int) -> tuple[int, int]:
        idx = [i for i, t in enumerate(self.a.tokens) if t.sentence == s]
        return (idx[0], idx[-1] + 1) if idx else (0, 0)

    def clause_end(self, i: int) -> int:
        """One past the last token of the clause holding token *i* (stops at a contrast)."""
        k = i + 1
        while k < len(self.norms) and self.clause_of[k] == self.clause_of[i]:
            k += 1
        return k

    def clause_start(self, i: int) -> int:
        k = i
        while k > 0 and self.clause_of[k - 1] == self.clause_of[i]:
            k -= 1
        return k

    def poles_in(self, first: int, end: int) -> list[str]:
        out: list[str] = []
        for h in self.hits:
            if first <= h.first < end and h.pole not in out:
                out.append(h.pole)
        return out

    def token_range(self, span: Span) -> tuple[int, int]:
        idx = [i for i, t in enumerate(self.a.tokens) if span.start <= t.start < span.end]
        return (idx[0], idx[-1] + 1) if idx else (0, 0)

    # ------------------------------------------------------------------ pairing

    def pair(
        self, left: list[str], right: list[str], *, generic_ok: bool
    ) -> tuple[str, str] | None:
        """The pair of poles, one from each side, that is most a tension."""
        generic = self.lex.generic
        # a generic pole names a side only when nothing more specific does
        left = [p for p in left if p not in generic] or left
        right = [p for p in right if p not in generic] or right
        best: tuple[tuple[int, int, int], tuple[str, str]] | None = None
        for a in left:
            for b in right:
                if a == b:
                    continue
                weight = self.lex.weight(a, b)
                n_generic = (a in generic) + (b in generic)
                if n_generic and not (generic_ok and weight > 0):
                    continue
                score = (-n_generic, weight, -left.index(a) - right.index(b))
                if best is None or score > best[0]:
                    best = (score, (a, b))
        return best[1] if best else None

    def intensity(self, first: int, end: int) -> int:
        sentences = {self.a.tokens[k].sentence for k in range(first, end)}
        feelings = sum(1 for f in self.a.named_feelings if f.sentence in sentences)
        stress = sum(1 for k, t in enumerate(self.a.tokens)
                     if t.sentence in sentences and self.norms[k] in _INTENSIFIERS)
        marks = min(1, sum(self.a.sentences[s].span.text.count("!") for s in sentences))
        return max(1, min(MAX_INTENSITY, 1 + feelings + stress + marks))

    def resolving(self, first: int, end: int) -> bool:
        sentences = {self.a.tokens[k].sentence for k in range(first, end)}
        sentences.add(max(sentences) + 1)
        for i, tok in enumerate(self.a.tokens):
            if tok.sentence in sentences and self.lex.resolving.match_at(self.norms, i):
                return True
        return False

    def finding(
        self, poles: tuple[str, str], left: tuple[int, int], right: tuple[int, int],
        confidence: int,
    ) -> TensionFinding:
        first, end = min(left[0], right[0]), max(left[1], right[1])
        a, b = poles
        if (a, b) != self.lex.ordered(a, b):
            left, right = right, left
            a, b = b, a
        return TensionFinding(
            (a, b), self.span(*left), self.span(*right), confidence,
            self.resolving(first, end), self.intensity(first, end),
        )

    # ------------------------------------------------------------------ stated tensions

    def stated_sides(self) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
        """(left tokens, right tokens, whether generic poles may name them)."""
        out: list[tuple[tuple[int, int], tuple[int, int], bool]] = []
        for t in self.a.tensions:
            left, right = self.token_range(t.left), self.token_range(t.right)
            if left[1] > left[0] and right[1] > right[0]:
                out.append((left, right, t.kind == "should_want"))
        out += self._between() + self._or() + self._set_against() + self._desires()
        out += self._both()
        return out

    def _between(self) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
        out = []
        n = self.norms
        for i, w in enumerate(n):
            if w != "between" or not any(
                n[k] in _BETWEEN_VERBS for k in range(max(0, i - 3), i)
            ):
                continue
            end = self.clause_end(i)
            ands = [k for k in range(i + 2, end) if n[k] in ("and", "or")]
            if ands:
                out.append(((i + 1, ands[0]), (ands[0] + 1, end), False))
        return out

    def _or(self) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
        out = []
        for i, w in enumerate(self.norms):
            if w not in ("or", "vs", "versus") or i == 0:
                continue
            before = [h for h in self.hits if i - MAX_OR_SIDE_TOKENS <= h.first and h.end <= i]
            after = [h for h in self.hits if i < h.first <= i + MAX_OR_SIDE_TOKENS]
            if before and after and self.clause_of[before[-1].first] == self.clause_of[i]:
                out.append(((before[-1].first, i), (i + 1, after[0].end), False))
        return out

    def _set_against(self) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
        out = []
        n = self.norms
        for i in range(len(n)):
            for words, kind in _SET_AGAINST.items():
                if tuple(n[i : i + len(words)]) != words:
                    continue
                start = self.clause_start(i)
                if kind == "over" and not any(
                    n[k].startswith(_CHOICE_VERBS) for k in range(start, i)
                ):
                    continue
                after = i + len(words)
                end = self.clause_end(i)
                if after < end and start < i:
                    out.append(((start, i), (after, end), False))
        return out

    def _desires(self) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
        """"I want X and I want Y", "I want X. I also want Y"."""
        lex = lexicon()
        n = self.norms
        wants = [
            i for i in range(len(n))
            if lex.desire.match_at(n, i) is not None
            and any(n[k] in lex.first_person or n[k].startswith("i'")
                    for k in range(max(0, i - 3), i))
        ]
        out = []
        for a, b in pairwise(wants):
            sa, sb = self.a.tokens[a].sentence, self.a.tokens[b].sentence
            if sb - sa > DESIRE_PAIR_SENTENCES:
                continue
            left_end = b
            while left_end > a + 1 and (n[left_end - 1] in lex.first_person
                                        or n[left_end - 1] in ("and", "also", "but", "i")):
                left_end -= 1
            end = self.sentence_range(sb)[1]
            out.append(((a, left_end), (b, end), True))
        return out

    def _both(self) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
        """Two pulls, then "both are true" / "I want both": the two clauses before it."""
        out = []
        for i, w in enumerate(self.norms):
            if w != "both":
                continue
            s = self.a.tokens[i].sentence
            first = self.sentence_range(s - 1)[0] if s > 0 else self.sentence_range(s)[0]
            clauses: dict[int, tuple[int, int]] = {}
            for k in range(first, self.clause_start(i)):
                c = self.clause_of[k]
                lo, hi = clauses.get(c, (k, k + 1))
                clauses[c] = (min(lo, k), max(hi, k + 1))
            ranges = [r for r in clauses.values() if self.poles_in(*r)]
            if len(ranges) >= 2:
                out.append((ranges[-2], ranges[-1], False))
        return out

    # ------------------------------------------------------------------ all of it

    def findings(self) -> list[TensionFinding]:
        found: dict[tuple[str, str], TensionFinding] = {}

        def keep(f: TensionFinding) -> None:
            old = found.get(f.poles)
            if old is None or (f.confidence, f.intensity) > (old.confidence, old.intensity):
                found[f.poles] = f

        for left, right, generic_ok in self.stated_sides():
            lp, rp = self.poles_in(*left), self.poles_in(*right)
            if not lp:
                lp = (self._person_of(left) or self._self_of(left)
                      or (self._generic_of(left) if generic_ok else []))
            if not rp:
                rp = (self._person_of(right) or self._self_of(right)
                      or (self._generic_of(right) if generic_ok else []))
            pair = self.pair(lp, rp, generic_ok=generic_ok)
            if pair is not None:
                keep(self.finding(pair, left, right, STATED))
        conflicted = _CONFLICT_RE.search(self.a.text) is not None or any(
            f.family in _CONFLICTED_FEELINGS for f in self.a.named_feelings
        )
        for f in self._co_occurring(set(found), inherent_only=not conflicted):
            keep(f)
        return sorted(found.values(), key=lambda f: (-f.confidence, f.left.start))

    def _self_of(self, side: tuple[int, int]) -> list[str]:
        """A side that wants something for the person themselves ("one evening just for
        me"), with no other pole: the pull of the self."""
        words = self.norms[side[0] : side[1]]
        if any(w in _SELF_WORDS for w in words) or "my own" in " ".join(words):
            return ["self"]
        return []

    def _person_of(self, side: tuple[int, int]) -> list[str]:
        """A side about someone, with no other pole: the pull of being with people."""
        toks = self.a.tokens
        first, end = toks[side[0]].start, toks[side[1] - 1].end
        if any(first <= s.start < end for p in self.a.people for s in p.spans) or any(
            self.norms[k] in _PERSON_WORDS for k in range(*side)
        ):
            return ["connection"]
        return []

    def _generic_of(self, side: tuple[int, int]) -> list[str]:
        lex = lexicon()
        for k in range(*side):
            if lex.obligation.match_at(self.norms, k) is not None:
                return ["duty"]
            if lex.desire.match_at(self.norms, k) is not None:
                return ["desire"]
        return []

    def _co_occurring(
        self, stated: set[tuple[str, str]], *, inherent_only: bool
    ) -> list[TensionFinding]:
        by_pole: dict[str, list[_Hit]] = {}
        for h in self.hits:  # side by side, a person is not yet a pull ("lunch with my dad");
            # in a conflicted entry they are ("my boss emailed at 9pm … my daughter cried")
            if h.pole not in self.lex.generic and (not h.by_role or not inherent_only):
                by_pole.setdefault(h.pole, []).append(h)
        pairs: list[tuple[int, int, str, str, _Hit, _Hit]] = []
        names = sorted(by_pole, key=lambda p: self.lex.order.get(p, 0))
        for x, a in enumerate(names):
            for b in names[x + 1 :]:
                weight = self.lex.weight(a, b)
                if weight < MIN_COOCCURRING_WEIGHT or self.lex.ordered(a, b) in stated:
                    continue
                if inherent_only and frozenset((a, b)) not in self.lex.inherent:
                    continue  # without a conflict cue only an inherent pair pulls
                inherent = frozenset((a, b)) in self.lex.inherent
                apart = [  # in different clauses; an inherent pair anywhere apart
                    (ha, hb) for ha in by_pole[a] for hb in by_pole[b]
                    if self.clause_of[ha.first] != self.clause_of[hb.first]
                    or (inherent and (ha.end <= hb.first or hb.end <= ha.first))
                ]
                if apart:
                    ha, hb = min(apart, key=lambda p: abs(p[0].first - p[1].first))
                    pairs.append((weight, -abs(ha.first - hb.first), a, b, ha, hb))
        pairs.sort(key=lambda p: (-p[0], -p[1]))
        out = []
        for _, _, a, b, ha, hb in pairs[:MAX_COOCCURRING_PER_ENTRY]:
            left = (self.clause_start(ha.first), self.clause_end(ha.first))
            right = (self.clause_start(hb.first), self.clause_end(hb.first))
            out.append(self.finding((a, b), left, right, CO_OCCURRING))
        return out


def find_tensions(analysis: Analysis) -> list[TensionFinding]:
    """The tensions of one entry, stated ones first. English entries only."""
    if not analysis.english or not analysis.tokens:
        return []
    return _Entry(analysis, pole_lexicon()).findings()


def pole_pair_weight(a: str, b: str) -> int:
    """How much people live *a* vs *b* as a tension (0: not a listed opposite)."""
    return pole_lexicon().weight(a, b)


__all__: Sequence[str] = ("TensionFinding", "find_tensions", "pole_lexicon", "pole_pair_weight")
