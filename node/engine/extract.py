"""Extraction: what one reflection says about the person, each finding with evidence.

``extract(reflection)`` returns an :class:`Extraction` of :class:`Item`s —
themes, emotions, values, beliefs, roles, people and tensions (pole vs pole) —
plus trigger → response → consequence :class:`Loop`s (``loops``) and the
content terms used to rank related reflections. Every item carries
:class:`Evidence`: the reflection id and the quoted words (with their character
offsets) it was read from.

Theory of operation: ``text.analyze`` already finds feelings, people, themes
and tensions with spans; this module names them for the identity graph and
adds what ``analyze`` does not read, from the phrase rules of
``data/understanding.json``: values, beliefs and the person's own roles.
Tensions are named by their poles (``poles``), loops read across sentences
(``loops``), and across two entries when the caller passes the one before.
Pure and deterministic; O(words) lookups. Extractions round-trip through
``to_json``/``from_json`` so the engine's index can rebuild everything.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Literal

from crdt.journal import Reflection
from crdt.values import format_timestamp, parse_timestamp

from .analysis import Analysis, Span
from .lexicon import PhraseIndex, lexicon, phrase_tokens
from .loops import MAX_LINK, Chain, continue_chains, find_chains
from .mood import valence_of
from .poles import STATED, find_tensions
from .recurrence import theme_label
from .text import analyze

ItemKind = Literal["theme", "emotion", "value", "belief", "role", "person", "tension"]
ITEM_KINDS: tuple[ItemKind, ...] = (
    "theme", "emotion", "value", "belief", "role", "person", "tension",
)
MAX_QUOTE_CHARS = 160
MAX_BELIEF_WORDS = 10
MAX_LOOPS_PER_REFLECTION = 8
MIN_TERM_CHARS = 3


@dataclass(frozen=True)
class Evidence:
    """Where a finding comes from: reflection *rid*, the words quoted, their offsets."""

    rid: str
    quote: str
    start: int = 0
    end: int = 0


@dataclass(frozen=True)
class Item:
    """One finding. ``node_id`` (``kind:key``) names it in the identity graph."""

    kind: ItemKind
    key: str
    label: str
    evidence: Evidence
    poles: tuple[str, str] | None = None  # tensions only
    intensity: int = 0  # tensions only: 1..poles.MAX_INTENSITY
    confidence: int = 0  # tensions only: poles.STATED, or poles.CO_OCCURRING
    resolving: bool = False  # tensions only: the text says the person is through with it

    @property
    def node_id(self) -> str:
        return f"{self.kind}:{self.key}"


@dataclass(frozen=True)
class Loop:
    """A trigger met by a response (a behaviour) with its consequences (``loops.Chain``).

    ``continued``: the consequences of a loop of the entry before, read in this
    one (it adds them to that loop without counting it again)."""

    trigger: str  # node id ("event:request", "person:carol", …) or ""
    response: str  # "behaviour:<name>"
    evidence: Evidence
    consequences: tuple[str, ...] = ()
    continued: bool = False

    @property
    def key(self) -> str:
        return f"{self.trigger or 'something'} -> {self.response}"


@dataclass(frozen=True)
class Extraction:
    rid: str
    created_at: datetime
    private: bool
    items: tuple[Item, ...] = ()
    loops: tuple[Loop, ...] = ()
    terms: tuple[str, ...] = ()  # content words, stemmed, in text order
    source: str = "offline"  # "offline" or "llm"
    extra: Mapping[str, Any] = field(default_factory=dict)
    valence: float | None = None  # mood.valence_of: -1..1; None if learned before it existed
    risk: str = ""  # the crisis net's tier for the reflection: "", "check_in" or "crisis"

    def of_kind(self, kind: ItemKind) -> list[Item]:
        return [i for i in self.items if i.kind == kind]

    def keys(self, kind: ItemKind) -> set[str]:
        return {i.key for i in self.items if i.kind == kind}


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rules:
    values: PhraseIndex
    value_cues: PhraseIndex
    value_cues_before: PhraseIndex
    beliefs: PhraseIndex
    belief_openers: PhraseIndex
    self_roles: PhraseIndex
    self_role_openers: PhraseIndex
    roles_from_relations: Mapping[str, str]


@cache
def rules() -> Rules:
    """The phrase rules of ``data/understanding.json``, parsed once."""
    raw = json.loads(
        resources.files(f"{__package__}.data").joinpath("understanding.json").read_text("utf-8")
    )

    def cues(name: str) -> PhraseIndex:
        return PhraseIndex.build((p, p) for p in raw[name])

    beliefs = [(p, key) for key, phrases in raw["beliefs"].items() for p in phrases]
    return Rules(
        values=PhraseIndex.build(raw["values"].items()),
        value_cues=cues("value_cues"),
        value_cues_before=cues("value_cues_before"),
        beliefs=PhraseIndex.build(beliefs),
        belief_openers=cues("belief_openers"),
        self_roles=PhraseIndex.build(raw["self_roles"].items()),
        self_role_openers=cues("self_role_openers"),
        roles_from_relations=dict(raw["roles_from_relations"]),
    )


# --------------------------------------------------------------------------- helpers


def slug(text: str) -> str:
    """A stable key from free text: lower-case words joined by single spaces."""
    return " ".join(phrase_tokens(text))[:80]


def stem(word: str) -> str:
    """A crude English stem, enough to let "worried" meet "worry" in ranking."""
    if word.endswith(("ss", "us", "is")):
        return word
    for suffix, repl in (("ies", "y"), ("ied", "y"), ("ing", ""), ("ed", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)] + repl
    return word


def terms_of(analysis: Analysis) -> tuple[str, ...]:
    stop = lexicon().stopwords
    return tuple(
        stem(t.norm)
        for t in analysis.tokens
        if len(t.norm) >= MIN_TERM_CHARS and t.norm not in stop and not t.norm.isdigit()
    )


class _Quoter:
    def __init__(self, analysis: Analysis, rid: str) -> None:
        self.a = analysis
        self.rid = rid
        self.starts = [s.span.start for s in analysis.sentences]

    def sentence_of(self, at: int) -> int:
        lo, hi = 0, len(self.starts)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.starts[mid] <= at:
                lo = mid + 1
            else:
                hi = mid
        return max(0, lo - 1)

    def evidence(self, span: Span) -> Evidence:
        """The sentence around *span* (cut to MAX_QUOTE_CHARS around it) as the quote."""
        if not self.a.sentences:
            return Evidence(self.rid, span.text[:MAX_QUOTE_CHARS], span.start, span.end)
        s = self.a.sentences[self.sentence_of(span.start)].span
        quote = " ".join(s.text.split())
        if len(quote) > MAX_QUOTE_CHARS:
            words = " ".join(self.a.text[span.start : span.end].split())
            left = max(s.start, span.start - (MAX_QUOTE_CHARS - len(words)) // 2)
            quote = " ".join(self.a.text[left : left + MAX_QUOTE_CHARS].split())
            if not quote.strip():
                quote = words[:MAX_QUOTE_CHARS]
        return Evidence(self.rid, quote, span.start, span.end)


def _first_span(spans: Iterable[Span]) -> Span:
    return min(spans, key=lambda s: s.start)


# --------------------------------------------------------------------------- extraction


def extract(
    reflection: Reflection,
    analysis: Analysis | None = None,
    *,
    previous: Reflection | None = None,
) -> Extraction:
    """Everything the offline rules find in *reflection*, with evidence.

    *previous*, the reflection written just before it, lets a loop that began
    there end here ("…poured another." / next morning: "Ashamed."); it is used
    only when it came at most ``loops.MAX_LINK`` before, and never when it is
    private and this one is not (nothing of a private entry may reach a
    document that can sync)."""
    a = analysis if analysis is not None else analyze(reflection.text)
    q = _Quoter(a, reflection.id)
    r = rules()
    norms = tuple(t.norm for t in a.tokens)
    items: list[Item] = []
    seen: set[str] = set()

    def add(item: Item) -> None:
        if item.node_id not in seen and item.key:
            seen.add(item.node_id)
            items.append(item)

    for theme in a.themes:
        add(Item("theme", theme.name, theme_label(theme.name), q.evidence(theme.spans[0])))
    for f in a.named_feelings:
        add(Item("emotion", f.family, f.family, q.evidence(f.span)))
    for p in a.people:
        label = p.name or f"my {p.role}"
        add(Item("person", p.key, label, q.evidence(p.spans[0])))
        if p.role is not None:
            role = r.roles_from_relations.get(p.role)
            if role is not None:
                add(Item("role", slug(role), role, q.evidence(p.spans[0])))
    if a.english:
        _values(a, norms, r, q, add)
        _beliefs(a, norms, r, q, add)
        _self_roles(a, norms, r, q, add)
    for t in find_tensions(a):
        span = a.span(min(t.left.start, t.right.start), max(t.left.end, t.right.end))
        add(Item("tension", t.key, t.key, _whole(q, span), poles=t.poles,
                 intensity=t.intensity, confidence=t.confidence, resolving=t.resolving))
    chains = find_chains(a)
    _remember_chains(a.text, chains)
    loops = [_loop(q, c) for c in chains[:MAX_LOOPS_PER_REFLECTION]]
    if _may_link(previous, reflection):
        assert previous is not None
        carried = continue_chains(_chains_of(previous.text), a)
        loops += [_loop(q, c, continued=True) for c in carried if c.response not in
                  {lp.response for lp in loops}][: MAX_LOOPS_PER_REFLECTION - len(loops)]
    mood = valence_of(a.text)
    return Extraction(
        rid=reflection.id,
        created_at=reflection.created_at,
        private=reflection.private,
        items=tuple(items),
        loops=tuple(loops),
        terms=terms_of(a),
        valence=mood.score,
        risk=mood.risk,
    )


def _values(a: Analysis, norms: tuple[str, ...], r: Rules, q: _Quoter, add: Any) -> None:
    toks = a.tokens
    for i in range(len(norms)):
        found = r.values.match_at(norms, i)
        if found is not None:
            n, value = found
            add(Item("value", value, value, q.evidence(a.span(toks[i].start, toks[i + n - 1].end))))
        cue = r.value_cues.match_at(norms, i)
        if cue is not None:
            j = i + cue[0]
            # "I care about honesty" -> the next content word names the value
            while j < len(norms) and norms[j] in lexicon().stopwords:
                j += 1
            if j < len(norms) and toks[j].sentence == toks[i].sentence:
                word = stem(norms[j]) if norms[j] not in r.values.by_first else norms[j]
                found2 = r.values.match_at(norms, j)
                value = found2[1] if found2 else word
                add(Item("value", value, value, q.evidence(a.span(toks[i].start, toks[j].end))))
        before = r.value_cues_before.match_at(norms, i)
        if before is not None and i > 0 and toks[i - 1].sentence == toks[i].sentence:
            k = i - 1
            stop = lexicon().stopwords
            while k > 0 and norms[k] in stop and toks[k - 1].sentence == toks[i].sentence:
                k -= 1
            found3 = r.values.match_at(norms, k)
            value = found3[1] if found3 else stem(norms[k])
            if norms[k] not in lexicon().stopwords:
                end = toks[i + before[0] - 1].end
                add(Item("value", value, value, q.evidence(a.span(toks[k].start, end))))


def _beliefs(a: Analysis, norms: tuple[str, ...], r: Rules, q: _Quoter, add: Any) -> None:
    toks = a.tokens
    for i in range(len(norms)):
        found = r.beliefs.match_at(norms, i)
        if found is not None:
            n, key = found
            add(Item("belief", key, key, q.evidence(a.span(toks[i].start, toks[i + n - 1].end))))
            continue
        opener = r.belief_openers.match_at(norms, i)
        if opener is None:
            continue
        j = i + opener[0]
        last = j
        sentence = toks[i].sentence
        while (
            last + 1 < len(norms)
            and toks[last + 1].sentence == sentence
            and last + 1 - j < MAX_BELIEF_WORDS
            and not re.search(r"[,;:—–]", a.text[toks[last].end : toks[last + 1].start])
        ):
            last += 1
        if any(r.beliefs.match_at(norms, k) for k in range(j, last + 1)):
            continue  # a known belief inside the clause is named by its own rule
        if j < len(norms) and toks[j].sentence == sentence:
            span = a.span(toks[i].start, toks[last].end)
            key = slug(" ".join(norms[i : last + 1]))
            add(Item("belief", key, " ".join(span.text.split()), q.evidence(span)))


def _self_roles(a: Analysis, norms: tuple[str, ...], r: Rules, q: _Quoter, add: Any) -> None:
    toks = a.tokens
    for i in range(len(norms)):
        opener = r.self_role_openers.match_at(norms, i)
        if opener is None:
            continue
        j = i + opener[0]
        # allow one describing word: "as a new manager", "i'm a single mom"
        for k in (j, j + 1):
            if k < len(norms) and toks[k].sentence == toks[i].sentence:
                found = r.self_roles.match_at(norms, k)
                if found is not None:
                    n, role = found
                    span = a.span(toks[i].start, toks[k + n - 1].end)
                    add(Item("role", slug(role), role, q.evidence(span)))
                    break


def _whole(q: _Quoter, span: Span) -> Evidence:
    """*span* itself as the quote when it is short enough, else its sentence."""
    ev = q.evidence(span)
    quote = " ".join(span.text.split())
    if len(quote) <= MAX_QUOTE_CHARS:
        return Evidence(ev.rid, quote, span.start, span.end)
    return ev


def _loop(q: _Quoter, chain: Chain, *, continued: bool = False) -> Loop:
    return Loop(chain.trigger, chain.response, _whole(q, chain.span),
                consequences=chain.consequences, continued=continued)


# The chains of the last texts read: extracting a journal in order reads each
# entry's chains again as the "previous" of the next one.
_CHAIN_CACHE: OrderedDict[str, tuple[Chain, ...]] = OrderedDict()
CHAIN_CACHE_ENTRIES = 64


def _remember_chains(text: str, chains: Sequence[Chain]) -> None:
    _CHAIN_CACHE[text] = tuple(chains)
    _CHAIN_CACHE.move_to_end(text)
    while len(_CHAIN_CACHE) > CHAIN_CACHE_ENTRIES:
        _CHAIN_CACHE.popitem(last=False)


def _chains_of(text: str) -> tuple[Chain, ...]:
    found = _CHAIN_CACHE.get(text)
    if found is None:
        found = tuple(find_chains(analyze(text)))
        _remember_chains(text, found)
    return found


def _may_link(previous: Reflection | None, reflection: Reflection) -> bool:
    if previous is None or previous.id == reflection.id:
        return False
    if previous.private and not reflection.private:
        return False
    gap = reflection.created_at - previous.created_at
    return gap.total_seconds() > 0 and gap <= MAX_LINK


# --------------------------------------------------------------------------- serialising


def evidence_json(e: Evidence) -> dict[str, Any]:
    return {"rid": e.rid, "quote": e.quote, "start": e.start, "end": e.end}


def evidence_from(d: Mapping[str, Any]) -> Evidence:
    return Evidence(
        str(d.get("rid", "")),
        str(d.get("quote", "")),
        int(d.get("start", 0) or 0),
        int(d.get("end", 0) or 0),
    )


def to_json(x: Extraction) -> str:
    """A compact JSON form for the engine's index document."""
    items = []
    for i in x.items:
        d: dict[str, Any] = {
            "k": i.kind, "key": i.key, "l": i.label, "e": evidence_json(i.evidence)
        }
        if i.poles is not None:
            d["p"] = list(i.poles)
            d["n"] = i.intensity
            d["c"] = i.confidence
            if i.resolving:
                d["z"] = True
        items.append(d)
    loops = []
    for lp in x.loops:
        ld: dict[str, Any] = {"t": lp.trigger, "r": lp.response, "e": evidence_json(lp.evidence)}
        if lp.consequences:
            ld["c"] = list(lp.consequences)
        if lp.continued:
            ld["x"] = True
        loops.append(ld)
    mood: dict[str, Any] = {} if x.valence is None else {"v": x.valence}
    if x.risk:
        mood["r"] = x.risk
    return json.dumps(
        {
            "t": format_timestamp(x.created_at),
            "p": x.private,
            "s": x.source,
            "i": items,
            "l": loops,
            "w": " ".join(x.terms),
            **mood,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def from_json(rid: str, raw: str) -> Extraction:
    """Read back :func:`to_json`; raises ``ValueError`` on anything malformed."""
    try:
        d = json.loads(raw)
        items = []
        for i in d["i"]:
            kind = i["k"]
            if kind not in ITEM_KINDS:
                continue
            poles = tuple(i["p"]) if "p" in i else None
            items.append(
                Item(
                    kind,
                    str(i["key"]),
                    str(i["l"]),
                    evidence_from(i["e"]),
                    poles=(str(poles[0]), str(poles[1])) if poles and len(poles) == 2 else None,
                    intensity=int(i.get("n", 0)),
                    # an entry written before confidence was recorded was a stated tension
                    confidence=int(i.get("c", STATED if kind == "tension" else 0)),
                    resolving=bool(i.get("z", False)),
                )
            )
        loops = [
            Loop(str(lp["t"]), str(lp["r"]), evidence_from(lp["e"]),
                 consequences=tuple(str(c) for c in lp.get("c", ())),
                 continued=bool(lp.get("x", False)))
            for lp in d["l"]
        ]
        return Extraction(
            rid=rid,
            created_at=parse_timestamp(str(d["t"])),
            private=bool(d["p"]),
            items=tuple(items),
            loops=tuple(loops),
            terms=tuple(str(d.get("w", "")).split()),
            source=str(d.get("s", "offline")),
            valence=float(d["v"]) if isinstance(d.get("v"), int | float) else None,
            risk=str(d.get("r", "")) if d.get("r") in ("check_in", "crisis") else "",
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ValueError(f"malformed index entry {rid}: {exc}") from None
