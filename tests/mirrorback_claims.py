"""Reading the claims an offline mirrorback makes about past reflections, and checking them.

The forms a claim may take are written out here, apart from the engine's
templates, so that a new form the engine starts saying fails the check until
someone states what it claims. Any sentence of a reply that speaks of
"reflection(s)" and matches no form is an unverifiable claim.

A claim is checked against the reflections the engine was shown: the last
``w`` before the one it answers (a "previous reflection" is the last of them).
A theme counts as present when ``text.analyze`` finds it (how "about work" is
meant), a person when the name, "my <role>" or "our <role>" is written (or the
reader of names finds them, as "Mum called"), a word when it is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from crdt.journal import Reflection
from node.engine.lexicon import WORD_RE, lexicon, normalize_token
from node.engine.recurrence import theme_label
from node.engine.text import analyze

N = r"(?P<n>\d+)"
W = r"(?P<w>\d+)"
S = r"(?P<s>[^.?!]+?)"
WORD = r"“(?P<s>[^”]+)”"
FORMS: list[tuple[str, str, re.Pattern[str]]] = [
    (kind, form, re.compile(pattern, re.IGNORECASE))
    for kind, form, pattern in [
        ("subject", "count", rf"You've written about {S} in {N} of your last {W} reflections\."),
        ("subject", "each", rf"You've written about {S} in each of your last {W} reflections\."),
        ("subject", "count", rf"{S} has come up in {N} of your last {W} reflections\."),
        ("subject", "each", rf"{S} has come up in each of your last {W} reflections\."),
        ("subject", "count", rf"Of your last {W} reflections, {N} (?:were about|mention) {S}"
                             rf"(?: too)?\."),
        ("subject", "each", rf"Each of your last {W} reflections (?:was about|mentions) {S}"
                            rf"(?: too)?\."),
        ("subject", "previous", rf"Your previous reflection was about {S} too\."),
        ("subject", "previous", rf"{S} was in your previous reflection too\."),
        ("subject", "previous", rf"There was {S} in your previous reflection too\."),
        ("subject", "previous", rf"{S} came up in your previous reflection as well\."),
        ("subject", "previous", rf"You wrote about {S} in your previous reflection too\."),
        ("word", "count", rf"You've used the word {WORD} in {N} of your last {W} reflections\."),
        ("word", "each", rf"You've used the word {WORD} in each of your last {W} reflections\."),
        ("word", "count", rf"The word {WORD} is in {N} of your last {W} reflections\."),
        ("word", "previous", rf"You used the word {WORD} in your previous reflection too\."),
        ("word", "previous", rf"The word {WORD} was in your previous reflection as well\."),
    ]
]


@dataclass(frozen=True)
class Fact:
    kind: str  # "subject" (a theme or a person) or "word"
    form: str  # count, each, previous
    subject: str
    n: int
    w: int
    sentence: str


def sentences(reply: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?!])\s+", " ".join(reply.split())) if s]


def claims_in(reply: str) -> list[Fact]:
    """Every claim about past reflections in *reply*; AssertionError for one that
    speaks of past reflections in no known form."""
    out = []
    for sentence in sentences(reply):
        if "reflection" not in sentence.lower():
            continue
        for kind, form, pattern in FORMS:
            m = pattern.fullmatch(sentence)
            if m:
                d = m.groupdict()
                n = int(d.get("n") or 0)
                w = int(d.get("w") or 0)
                out.append(Fact(kind, form, d["s"].strip(), n, w, sentence))
                break
        else:
            raise AssertionError(f"a claim in no known form: {sentence!r}")
    return out


def _present(subject: str, text: str) -> bool:
    low = subject.lower()
    words = {normalize_token(m.group()) for m in WORD_RE.finditer(text)}
    a = analyze(text)
    if low.startswith("your "):  # "your boss" is written "my boss", "our kids", "Mum"
        flat = " ".join(text.lower().split())
        role = low[5:]
        return (f"my {role}" in flat or f"our {role}" in flat
                or f"my {role}" in {p.key for p in a.people})
    labels = {label.lower() for label in lexicon().theme_labels.values()}
    if low in labels:
        return low in {theme_label(t.name).lower() for t in a.themes}
    return low in {p.key for p in a.people} or low in words or f"{low}'s" in words


def check(fact: Fact, shown: Sequence[Reflection]) -> None:
    """Raise AssertionError unless *fact* is true of *shown* (the past, oldest first)."""
    if fact.form == "previous":
        assert shown, fact.sentence
        text = shown[-1].text
        ok = (normalize_token(fact.subject) in {normalize_token(m.group())
                                                for m in WORD_RE.finditer(text)}
              if fact.kind == "word" else _present(fact.subject, text))
        assert ok, (fact.sentence, text)
        return
    assert fact.w <= len(shown), (fact.sentence, len(shown))
    window = shown[-fact.w :]
    if fact.kind == "word":
        hits = sum(normalize_token(fact.subject) in {normalize_token(m.group())
                                                      for m in WORD_RE.finditer(r.text)}
                   for r in window)
    else:
        hits = sum(_present(fact.subject, r.text) for r in window)
    expected = fact.w if fact.form == "each" else fact.n
    assert hits == expected, (fact.sentence, hits, [r.text[:60] for r in window])
