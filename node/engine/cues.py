"""Phrase cues with word stems: the matcher behind tension poles and loop steps.

A cue is a lower-case phrase; a word ending in ``*`` matches any word it starts
(``resent*`` matches "resent", "resented", "resentful"). ``CueIndex.match_at``
finds the longest cue starting at a token, looking up its first word (exact,
or by its first ``STEM_KEY_CHARS`` letters for stems), so a text of n words
costs O(n) lookups. Pure; built once per data file.

With ``inflect=True`` a plain cue word matches any inflection of it: both the
cue and the text are reduced to a crude English lemma (:func:`lemma`: "shouted",
"shouting", "shouts" and "shout" are one; "swiped" and "swipe"; "cried" and
"cry"), so a cue list names a behaviour once, not in every tense a person might
write it in ("I shout at her" in the present of a non-native speaker, "I'm
shouting", "I shouted").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .lexicon import phrase_tokens

STEM_KEY_CHARS = 3  # a stem cue must give at least this many letters before its *
MIN_LEMMA_CHARS = 3  # a suffix is taken off only if this much of the word remains
_VOWELS = frozenset("aeiouy")
_KEEP_DOUBLE = frozenset("lsz")  # "scrolling" -> "scroll", but "snapping" -> "snap"
_IRREGULAR = {
    "went": "go", "gone": "go", "goes": "go", "ate": "eat", "eaten": "eat", "drank": "drink",
    "drunk": "drink", "slept": "sleep", "woke": "wake", "woken": "wake", "told": "tell",
    "said": "say", "says": "say", "felt": "feel", "kept": "keep", "left": "leave",
    "lost": "lose", "sat": "sit", "hid": "hide", "hidden": "hide", "bought": "buy",
    "spent": "spend", "thought": "think", "made": "make", "took": "take", "taken": "take",
    "gave": "give", "given": "give", "rang": "ring", "rung": "ring", "ran": "run",
    "sent": "send", "got": "get", "gotten": "get", "came": "come", "stood": "stand",
    "fell": "fall", "fallen": "fall", "fought": "fight", "threw": "throw", "thrown": "throw",
    "swam": "swim", "drove": "drive", "driven": "drive", "wrote": "write", "written": "write",
    "broke": "break", "broken": "break", "hung": "hang", "brought": "bring", "paid": "pay",
    "lent": "lend", "built": "build", "heard": "hear", "met": "meet", "sold": "sell",
    "stuck": "stick", "spoke": "speak", "spoken": "speak", "chose": "choose",
    "chosen": "choose", "forgot": "forget", "forgotten": "forget", "bit": "bite",
    "bitten": "bite", "blew": "blow", "blown": "blow", "shook": "shake", "won": "win",
    "snuck": "sneak", "fed": "feed", "led": "lead", "meant": "mean", "cried": "cry",
    "tried": "try", "worried": "worry", "hurried": "hurry", "married": "marry",
    "has": "have", "had": "have", "does": "do", "did": "do", "done": "do",
}


def lemma(word: str) -> str:
    """A crude English lemma, the same for a verb's or a noun's forms: "shouted",
    "shouting", "shouts" → "shout"; "swiping", "swiped", "swipe" → "swip";
    "parties", "party" → "parti". Not a dictionary form: only ever compared with
    another lemma. Words with an apostrophe and short words are kept as they are."""
    w = word.lower()
    if w in _IRREGULAR:
        return lemma(_IRREGULAR[w])
    if "'" in w or len(w) <= MIN_LEMMA_CHARS or not w.isalpha():
        return w
    for suffix in ("ing", "ed", "es", "s"):
        if not w.endswith(suffix):
            continue
        stem = w[: -len(suffix)]
        if suffix == "s" and w.endswith(("ss", "us", "is")):
            break
        if suffix == "es" and not stem.endswith(("sh", "ch", "x", "ss", "zz", "i")):
            continue  # "swipes": the "e" is the word's own; try "s"
        if len(stem) < MIN_LEMMA_CHARS or not _VOWELS & set(stem):
            break
        if (suffix in ("ing", "ed") and len(stem) > MIN_LEMMA_CHARS and stem[-1] == stem[-2]
                and stem[-1] not in _VOWELS and stem[-1] not in _KEEP_DOUBLE):
            stem = stem[:-1]  # "snapped" -> "snap"
        w = stem
        break
    if w.endswith("ie") and len(w) > MIN_LEMMA_CHARS:
        w = w[:-2] + "i"  # "partie(s)" -> "parti"
    elif w.endswith("y") and len(w) > MIN_LEMMA_CHARS and w[-2] not in _VOWELS:
        w = w[:-1] + "i"  # "cry", "party" -> "cri", "parti"
    elif w.endswith("e") and not w.endswith("ee") and len(w) > MIN_LEMMA_CHARS:
        w = w[:-1]  # "swipe" -> "swip", like "swiping"
    return w


def _word_matches(pattern: str, norm: str) -> bool:
    if pattern.endswith("*"):
        return norm.startswith(pattern[:-1])
    return norm == pattern


@dataclass(frozen=True)
class Cue:
    words: tuple[str, ...]  # a word may end in * (a stem)
    value: str
    exact: bool  # no stems: a plain comparison of token tuples will do


def _cue_words(phrase: str) -> tuple[str, ...]:
    out: list[str] = []
    for raw in phrase.lower().replace("’", "'").split():
        stem = raw.endswith("*")
        toks = phrase_tokens(raw.rstrip("*"))
        if not toks:
            continue
        out += list(toks[:-1])
        out.append(toks[-1] + "*" if stem else toks[-1])
    return tuple(out)


class CueIndex:
    """Cues grouped by first word (exact) or by its stem's first letters; longest first."""

    def __init__(self, pairs: Iterable[tuple[str, str]], *, inflect: bool = False) -> None:
        self.inflect = inflect
        exact: dict[str, dict[tuple[str, ...], str]] = {}
        stems: dict[str, dict[tuple[str, ...], str]] = {}
        for phrase, value in pairs:
            words = _cue_words(phrase)
            if not words:
                continue
            if inflect:
                words = tuple(w if w.endswith("*") else lemma(w) for w in words)
            first = words[0]
            if first.endswith("*"):
                if len(first) - 1 < STEM_KEY_CHARS:
                    raise ValueError(f"stem cue too short: {phrase!r}")
                stems.setdefault(first[:STEM_KEY_CHARS], {}).setdefault(words, value)
            else:
                exact.setdefault(first, {}).setdefault(words, value)

        def ordered(group: dict[tuple[str, ...], str]) -> tuple[Cue, ...]:
            return tuple(Cue(w, v, not any(x.endswith("*") for x in w))
                         for w, v in sorted(group.items(), key=lambda kv: -len(kv[0])))

        self._exact = {k: ordered(v) for k, v in exact.items()}
        self._stems = {k: ordered(v) for k, v in stems.items()}

    def match_at(
        self, norms: Sequence[str], i: int, lemmas: Sequence[str] | None = None
    ) -> tuple[int, str] | None:
        """The longest cue starting at token *i*: (its length in tokens, its value).
        An inflecting index compares plain words by their *lemmas* (computed here if
        not given) and stems by the words themselves."""
        if self.inflect and lemmas is None:
            lemmas = [lemma(w) for w in norms]
        best: tuple[int, str] | None = None
        plain = lemmas if lemmas is not None else norms
        word = norms[i]
        size = len(norms)
        for group in (self._exact.get(plain[i], ()), self._stems.get(word[:STEM_KEY_CHARS], ())):
            for cue in group:
                n = len(cue.words)
                if best is not None and n <= best[0]:
                    break
                if i + n > size:
                    continue
                if cue.exact:
                    hit = n == 1 or tuple(plain[i : i + n]) == cue.words
                else:
                    hit = all(_word_matches(p, norms[i + k] if p.endswith("*") else plain[i + k])
                              for k, p in enumerate(cue.words))
                if hit:
                    best = (n, cue.value)
                    break
        return best

    def find_all(self, norms: Sequence[str]) -> list[tuple[int, int, str]]:
        """Every non-overlapping cue, left to right: (first token, length, value)."""
        out: list[tuple[int, int, str]] = []
        lemmas = [lemma(w) for w in norms] if self.inflect else None
        i = 0
        while i < len(norms):
            found = self.match_at(norms, i, lemmas)
            if found is None:
                i += 1
                continue
            out.append((i, found[0], found[1]))
            i += found[0]
        return out
