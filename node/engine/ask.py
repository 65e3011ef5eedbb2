"""Asking the journal: retrieval over the reflections and an answer that cites them.

``read_question(text)`` reads what is asked: a moment ("when did I *last* feel
calm", "the first time", "how often"), what about (a feeling — by its family,
so "calm" also finds "relaxed" —, a person, a theme, else the question's
words), and a period ("last week", "in March", "this month", "since
2026-02-01").

``retrieve(question, extractions, index, …)`` finds the reflections that answer
it: for a moment or a count, those whose findings hold the feeling, person or
theme, newest or oldest first; otherwise Okapi BM25 over the engine's index
(``related.RelatedIndex``), with the question's feeling words widened to their
family. ``extractive_answer`` then writes the offline answer: each reflection's
date, its id and its most relevant sentence, quoted — nothing that is not in
the journal.

``verify_citations(answer, given)`` is the check a model's answer must pass:
every reflection id it cites is one it was given, and every quote it attributes
to one is in that reflection's text. Pure; no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from crdt.journal import Reflection

from .extract import Extraction, extract, stem, terms_of
from .lexicon import lexicon, normalize_token
from .recurrence import theme_label
from .related import RelatedIndex
from .text import analyze, split_sentences

MAX_RETRIEVED = 8
MAX_ANSWER_CITATIONS = 5
MAX_ANSWER_QUOTE_CHARS = 200
MIN_CITED_ID_CHARS = 6
MAX_FAMILY_EXPANSION = 12  # feeling words added to the query for one family
MIN_QUOTE_CHARS = 3
QUESTION_ID = "?question"  # never a reflection id (those are lower-case letters and digits)

Moment = Literal["last", "first", "count", "any"]
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_LAST_RE = re.compile(r"\b(last|most recently|latest|recent)\b")
_FIRST_RE = re.compile(r"\b(first|earliest|start(?:ed)? to)\b")
_COUNT_RE = re.compile(r"\bhow (often|many times|many)\b|\bhow much\b")
_PERIOD_RE = re.compile(r"\b(last|this|past) (week|month|year)\b|\byesterday\b|\btoday\b")
_SINCE_RE = re.compile(r"\bsince (\d{4}-\d{2}-\d{2})\b")
_IN_MONTH_RE = re.compile(r"\bin (" + "|".join(_MONTHS) + r")\b")
_FEELING_QUESTION_RE = re.compile(r"\b(feel|felt|feeling|feelings|mood|emotions?)\b")
_CITE_RE = re.compile(r"\[([A-Za-z0-9]{4,})\]")
_QUOTE_RE = re.compile(r"“([^”]+)”|\"([^\"]+)\"")


@dataclass(frozen=True)
class Question:
    text: str
    moment: Moment
    feelings: tuple[str, ...]  # families
    feeling_words: tuple[str, ...]  # as the question says them ("guilty")
    people: tuple[str, ...]  # Person.key
    people_names: tuple[str, ...]  # as said back: "Leah", "your boss"
    themes: tuple[str, ...]
    since: datetime | None = None
    until: datetime | None = None
    any_feeling: bool = False  # "how did I feel in March?": every feeling named

    @property
    def about(self) -> tuple[str, ...]:
        """The node ids the question is about (``emotion:calm``, ``person:maya`` …)."""
        return (*(f"emotion:{f}" for f in self.feelings),
                *(f"person:{p}" for p in self.people), *(f"theme:{t}" for t in self.themes))


@dataclass(frozen=True)
class Citation:
    rid: str
    created_at: datetime
    quote: str
    private: bool


@dataclass(frozen=True)
class Answer:
    question: str
    text: str
    citations: tuple[Citation, ...]
    method: str  # "offline" or "model"
    note: str = ""  # why the model's answer was not used, or what was left out
    private_left_out: int = 0  # private reflections a model off this machine was not shown


# --------------------------------------------------------------------------- the question


def read_question(text: str, *, now: datetime) -> Question:
    """What *text* asks, relative to *now* (for "last week" and the like)."""
    low = " ".join(text.lower().split())
    a = analyze(text)
    moment: Moment = "any"
    if _COUNT_RE.search(low):
        moment = "count"
    elif _FIRST_RE.search(low) and low.startswith(("when", "what", "which")):
        moment = "first"
    elif _LAST_RE.search(low) and not _PERIOD_RE.search(low):
        moment = "last"
    feelings = tuple(dict.fromkeys(f.family for f in a.feelings))
    words = tuple(dict.fromkeys(" ".join(f.span.text.lower().split()) for f in a.feelings))
    if not feelings:  # "when was I last calm": a contextual feeling word, asked about
        lex = lexicon()
        for tok in a.tokens:
            found = lex.contextual_feelings.match_at((tok.norm,), 0)
            if found is not None and tok.norm not in ("good", "great", "better", "ok", "okay"):
                feelings, words = (found[1],), (tok.norm,)
                break
    since, until = _period(low, now)
    any_feeling = not feelings and _FEELING_QUESTION_RE.search(low) is not None
    return Question(
        text=text, moment=moment, feelings=feelings, feeling_words=words,
        people=tuple(p.key for p in a.people),
        people_names=tuple(p.name or f"your {p.role}" for p in a.people),
        themes=tuple(t.name for t in a.themes if t.name not in feelings),
        since=since, until=until, any_feeling=any_feeling,
    )


def _period(low: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    m = _SINCE_RE.search(low)
    if m:
        try:
            return datetime.fromisoformat(m.group(1)).replace(tzinfo=now.tzinfo), None
        except ValueError:
            return None, None
    m = _IN_MONTH_RE.search(low)
    if m:
        month = _MONTHS.index(m.group(1)) + 1
        year = now.year if month <= now.month else now.year - 1
        start = now.replace(year=year, month=month, day=1, hour=0, minute=0, second=0,
                            microsecond=0)
        end = start.replace(year=year + (month == 12), month=month % 12 + 1)
        return start, end
    m = _PERIOD_RE.search(low)
    if not m:
        return None, None
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if m.group(0) == "today":
        return day, None
    if m.group(0) == "yesterday":
        return day - timedelta(days=1), day
    span = {"week": 7, "month": 30, "year": 365}[m.group(2)]
    if m.group(1) == "this" and m.group(2) == "week":
        return day - timedelta(days=day.weekday()), None
    if m.group(1) == "this" and m.group(2) == "month":
        return day.replace(day=1), None
    return day - timedelta(days=span), None


# --------------------------------------------------------------------------- retrieval


def _in_period(x: Extraction, q: Question) -> bool:
    return (q.since is None or x.created_at >= q.since) and (
        q.until is None or x.created_at < q.until
    )


def query_terms(q: Question) -> tuple[str, ...]:
    """The question's content words, stemmed, with its feelings widened to their family."""
    terms = list(terms_of(analyze(q.text)))
    lex = lexicon()
    for family in q.feelings:
        words = [stem(toks[0]) for entries in lex.feelings.by_first.values()
                 for toks, fam in entries if fam == family and len(toks) == 1]
        terms += words[:MAX_FAMILY_EXPANSION]
    return tuple(dict.fromkeys(terms))


def retrieve(
    q: Question,
    extractions: Sequence[Extraction],
    index: RelatedIndex,
    *,
    include_private: bool = True,
    limit: int = MAX_RETRIEVED,
) -> list[Extraction]:
    """The reflections that answer *q*, best (or, for "first", oldest) first."""
    pool = [x for x in extractions if _in_period(x, q) and (include_private or not x.private)]
    about = set(q.about)
    if q.any_feeling:
        about = {i.node_id for x in pool for i in x.items if i.kind == "emotion"}
    if about and (q.moment in ("last", "first", "count") or q.any_feeling):
        hits = [x for x in pool if about & {i.node_id for i in x.items}]
        hits.sort(key=lambda x: x.created_at, reverse=q.moment != "first")
        return hits if q.moment == "count" else hits[:limit]
    by_id = {x.rid: x for x in pool}
    probe = replace(extract(Reflection(QUESTION_ID, datetime.now().astimezone(), q.text)),
                    terms=query_terms(q))
    ranked = [by_id[r.rid] for r in index.query(probe, limit=limit * 4,
                                                 include_private=include_private)
              if r.rid in by_id]
    if about:  # the question's findings first, then the rest by score
        ranked.sort(key=lambda x: not (about & {i.node_id for i in x.items}))
    if not ranked and about:
        ranked = sorted((x for x in pool if about & {i.node_id for i in x.items}),
                        key=lambda x: x.created_at, reverse=True)
    return ranked[:limit]


@dataclass(frozen=True)
class Retrieved:
    """What the journal holds for a question: the reflections, best first, and how
    many matched in all (a count may match more than are quoted)."""

    question: Question
    reflections: tuple[Reflection, ...]
    citations: tuple[Citation, ...]
    total: int


# --------------------------------------------------------------------------- the answer


def best_sentence(text: str, terms: Sequence[str], about_quotes: Sequence[str] = ()) -> str:
    """The sentence of *text* that answers best: one holding an evidence quote of the
    question's findings, else the one sharing most of its *terms*."""
    flat = " ".join(text.split())
    for quote in about_quotes:
        if quote and quote in flat:
            return _cut(quote)
    wanted = set(terms)
    best, score = "", -1
    for span in split_sentences(text):
        words = {stem(normalize_token(w)) for w in re.findall(r"[\w'’-]+", span.text)}
        s = len(words & wanted)
        if s > score:
            best, score = " ".join(span.text.split()), s
    return _cut(best or flat)


def _cut(text: str) -> str:
    if len(text) <= MAX_ANSWER_QUOTE_CHARS:
        return text
    cut = text[:MAX_ANSWER_QUOTE_CHARS].rsplit(" ", 1)[0]
    return cut + "…"


def _day(moment: datetime) -> str:
    return f"{moment.astimezone():%Y-%m-%d}"


def cite_line(c: Citation) -> str:
    lock = " 🔒" if c.private else ""
    return f"{_day(c.created_at)} [{c.rid[:8]}]{lock} “{c.quote}”"


def citations_for(
    q: Question, found: Sequence[Extraction], texts: Mapping[str, Reflection]
) -> list[Citation]:
    terms = query_terms(q)
    about = set(q.about)
    if q.any_feeling:
        about = {i.node_id for x in found for i in x.items if i.kind == "emotion"}
    out = []
    for x in found:
        r = texts.get(x.rid)
        if r is None:
            continue
        quotes = [i.evidence.quote for i in x.items if i.node_id in about]
        out.append(Citation(x.rid, x.created_at, best_sentence(r.text, terms, quotes),
                            x.private))
    return out


def _subject(q: Question) -> str:
    """What the answer is about, in the question's words: "feeling guilty", "Leah"."""
    if q.feelings:
        words = q.feeling_words or q.feelings
        return f"feeling {' or '.join(words)}"
    if q.people:
        return " or ".join(q.people_names)
    if q.themes:
        return " or ".join(theme_label(t) for t in q.themes)
    return "that"


def extractive_answer(q: Question, cites: Sequence[Citation], *, total: int | None = None
                      ) -> str:
    """The offline answer: what the journal says, in its own words, each with its id."""
    if not cites:
        period = " in that period" if q.since or q.until else ""
        return f"Nothing in your journal{period} speaks to that yet."
    shown = list(cites[:MAX_ANSWER_CITATIONS])
    lines: list[str] = []
    if q.moment == "last":
        lines.append(f"The last time you wrote about {_subject(q)}: {cite_line(shown[0])}")
        rest, lead = shown[1:], "Before that:"
    elif q.moment == "first":
        lines.append(f"The first time you wrote about {_subject(q)}: {cite_line(shown[0])}")
        rest, lead = shown[1:], "After that:"
    elif q.moment == "count":
        n = total if total is not None else len(cites)
        first, last = min(c.created_at for c in cites), max(c.created_at for c in cites)
        lines.append(f"You wrote about {_subject(q)} in {n} reflection{'s' * (n != 1)}, "
                     f"from {_day(first)} to {_day(last)}. The most recent:")
        rest, lead = shown, ""
    elif q.any_feeling:
        n = total if total is not None else len(cites)
        lines.append(f"You named feelings in {n} reflection{'s' * (n != 1)}"
                     f"{' in that period' if q.since or q.until else ''}. The most recent:")
        rest, lead = shown, ""
    else:
        n = len(shown)
        lines.append(f"From {n} reflection{'s' * (n != 1)} that speak to it:")
        rest, lead = shown, ""
    if rest and lead:
        lines.append(lead)
    lines += [f"  {cite_line(c)}" for c in rest]
    return "\n".join(lines)


# --------------------------------------------------------------------------- checking a model


def _norm(text: str) -> str:
    return " ".join(text.replace("’", "'").replace("‘", "'").lower().split())


@dataclass(frozen=True)
class CitationCheck:
    ok: bool
    cited: tuple[str, ...]  # full ids, in order of first citation
    problem: str = ""


def resolve_id(ref: str, given: Mapping[str, Reflection]) -> str | None:
    """The id of *given* that *ref* names (whole, or a unique prefix of 6+ characters)."""
    if ref in given:
        return ref
    if len(ref) < MIN_CITED_ID_CHARS:
        return None
    hits = [rid for rid in given if rid.startswith(ref)]
    return hits[0] if len(hits) == 1 else None


def verify_citations(answer: str, given: Mapping[str, Reflection]) -> CitationCheck:
    """Whether every id *answer* cites was given and every quote it attributes to an
    id is in that reflection. A quote belongs to the nearest id cited before it in
    the same sentence, else the next one after it; a quote with no id, or an
    answer that cites nothing, fails."""
    cited: list[str] = []
    for sentence in re.split(r"(?<=[.?!])\s+|\n+", answer):
        refs = [(m.start(), m.group(1)) for m in _CITE_RE.finditer(sentence)]
        for _, ref in refs:
            rid = resolve_id(ref, given)
            if rid is None:
                return CitationCheck(False, tuple(cited), f"cites [{ref}], not a reflection given")
            if rid not in cited:
                cited.append(rid)
        for m in _QUOTE_RE.finditer(sentence):
            quote = m.group(1) or m.group(2) or ""
            if len(quote.strip()) < MIN_QUOTE_CHARS:
                continue
            before = [ref for at, ref in refs if at < m.start()]
            after = [ref for at, ref in refs if at > m.start()]
            owner = before[-1] if before else (after[0] if after else None)
            if owner is None:
                return CitationCheck(False, tuple(cited), f"quotes “{quote}” with no id")
            rid = resolve_id(owner, given)
            parts = [p for p in re.split(r"…|\.\.\.", quote) if p.strip()]
            if rid is None or not all(_norm(p) in _norm(given[rid].text) for p in parts):
                return CitationCheck(False, tuple(cited),
                                     f"quotes “{quote}”, which [{owner}] does not say")
    if not cited:
        return CitationCheck(False, (), "cites no reflection")
    return CitationCheck(True, tuple(cited))
