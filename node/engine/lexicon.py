"""The offline engine's word lists, loaded once from the data files beside it.

Everything the offline engine knows about English lives in ``node/engine/data``
(feelings by family, themes, relational roles, stopwords, words that are not
names, tension cues; the crisis net keeps its own in ``safety/``), so that it can
be read, reviewed and extended without touching code. ``lexicon()`` parses them once per process.

Phrases are stored as tuples of normalised tokens (see ``normalize_token``) in
a ``PhraseIndex`` keyed by their first token, so matching a text costs one dict
lookup per token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

_DATA_PACKAGE = f"{__package__}.data"

# A word: letters or digits, joined by inner apostrophes or hyphens ("don't", "self-worth").
WORD_RE = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


def normalize_token(word: str) -> str:
    """Lower case, with typographic apostrophes straightened."""
    return word.lower().replace("’", "'")


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    return tuple(normalize_token(m.group()) for m in WORD_RE.finditer(phrase))


@dataclass(frozen=True)
class PhraseIndex:
    """Phrases (token tuples) → value, grouped by first token, longest first."""

    by_first: Mapping[str, tuple[tuple[tuple[str, ...], str], ...]]

    @classmethod
    def build(cls, pairs: Iterable[tuple[str, str]]) -> PhraseIndex:
        grouped: dict[str, dict[tuple[str, ...], str]] = {}
        for phrase, value in pairs:
            toks = phrase_tokens(phrase)
            if toks:
                # first value wins, so data files list the stronger reading first
                grouped.setdefault(toks[0], {}).setdefault(toks, value)
        return cls(
            {
                first: tuple(sorted(entries.items(), key=lambda kv: -len(kv[0])))
                for first, entries in grouped.items()
            }
        )

    def match_at(self, norms: tuple[str, ...], i: int) -> tuple[int, str] | None:
        """The longest phrase starting at token *i*: (its length, its value)."""
        for toks, value in self.by_first.get(norms[i], ()):
            n = len(toks)
            if norms[i : i + n] == toks:
                return n, value
        return None

    def __contains__(self, phrase: object) -> bool:
        if not isinstance(phrase, tuple) or not phrase:
            return False
        return any(toks == phrase for toks, _ in self.by_first.get(phrase[0], ()))


@dataclass(frozen=True)
class Lexicon:
    feelings: PhraseIndex  # phrase → family
    contextual_feelings: PhraseIndex  # phrase → family; only after a feeling verb
    feeling_emoji: Mapping[str, str]  # emoji → family
    feeling_emoji_re: re.Pattern[str] | None  # any of them, longest first
    themes: PhraseIndex  # phrase → theme
    theme_labels: Mapping[str, str]  # theme → how it is said in a sentence
    roles: PhraseIndex  # role phrase → theme
    stopwords: frozenset[str]
    not_names: frozenset[str]
    contrast: PhraseIndex
    obligation: PhraseIndex
    desire: PhraseIndex
    negation: frozenset[str]
    negation_breakers: frozenset[str]  # "can't stop worrying" is not a negated worry
    feeling_context: frozenset[str]
    first_person: frozenset[str]
    name_verbs: frozenset[str]
    address_forms: frozenset[str]  # role words used as a name ("Mom called")
    positive_families: frozenset[str] = frozenset()  # never counted from a line at risk

    def is_known_word(self, norm: str) -> bool:
        """True for words the lexicon gives a meaning to (so not a name at sentence start)."""
        key = (norm,)
        return (
            norm in self.stopwords
            or norm in self.not_names
            or key in self.feelings
            or key in self.contextual_feelings
            or key in self.themes
            or key in self.roles
        )


def _read_json(name: str) -> Any:
    return json.loads(resources.files(_DATA_PACKAGE).joinpath(name).read_text("utf-8"))


def _read_words(name: str) -> frozenset[str]:
    text = resources.files(_DATA_PACKAGE).joinpath(name).read_text("utf-8")
    return frozenset(
        normalize_token(line.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def _cue_index(cues: Mapping[str, Any], key: str) -> PhraseIndex:
    return PhraseIndex.build((str(p), key) for p in cues[key])


@cache
def lexicon() -> Lexicon:
    """The lexicon, parsed from the data files on first use."""
    emotions_data = _read_json("emotions.json")
    emotions = emotions_data["families"]
    feelings: list[tuple[str, str]] = []
    contextual: list[tuple[str, str]] = []
    emoji: dict[str, str] = {}
    for family, entry in emotions.items():
        feelings += [(w, family) for w in entry["words"]]
        contextual += [(w, family) for w in entry["contextual"]]
        for e in entry["emoji"]:
            emoji.setdefault(e, family)
    themes_data = _read_json("themes.json")
    themes = [(w, theme) for theme, words in themes_data["themes"].items() for w in words]
    labels = {theme: theme for theme in themes_data["themes"]}
    labels.update(themes_data.get("labels", {}))
    roles_data = _read_json("roles.json")
    roles = roles_data["roles"]
    cues = _read_json("cues.json")
    return Lexicon(
        feelings=PhraseIndex.build(feelings),
        contextual_feelings=PhraseIndex.build(contextual),
        feeling_emoji=emoji,
        feeling_emoji_re=(
            re.compile("|".join(re.escape(e) for e in sorted(emoji, key=len, reverse=True)))
            if emoji
            else None
        ),
        themes=PhraseIndex.build(themes),
        theme_labels=labels,
        roles=PhraseIndex.build(roles.items()),
        stopwords=_read_words("stopwords.txt"),
        not_names=_read_words("not_names.txt"),
        contrast=_cue_index(cues, "contrast"),
        obligation=_cue_index(cues, "obligation"),
        desire=_cue_index(cues, "desire"),
        negation=frozenset(normalize_token(w) for w in cues["negation"]),
        negation_breakers=frozenset(normalize_token(w) for w in cues["negation_breakers"]),
        feeling_context=frozenset(normalize_token(w) for w in cues["feeling_context"]),
        first_person=frozenset(normalize_token(w) for w in cues["first_person"]),
        name_verbs=frozenset(normalize_token(w) for w in cues["name_verbs"]),
        address_forms=frozenset(normalize_token(w) for w in roles_data["address_forms"]),
        positive_families=frozenset(emotions_data.get("positive_families", ())),
    )
