"""Extraction by a model: ask for JSON, validate it against the schema, repair or reject.

The model is asked (``prompts/extract.md``) for one JSON object of lists.
What comes back is treated as hostile input:

* the JSON is found — bare, inside a code fence, or as the first balanced
  ``{...}`` in prose — and trailing commas are repaired; if nothing parses,
  the answer is rejected (:class:`MalformedAnswer`) and the offline
  extraction stands alone;
* unknown keys are dropped; a list of plain strings is read as names;
* every finding needs evidence: its quote must occur in the reflection
  (compared without case and extra spaces); a finding with no quote is given
  its name as the quote when the name occurs in the text, else dropped;
* names are cut to ``MAX_NAME_CHARS``, lists to ``MAX_ITEMS_PER_KIND``.

The surviving findings are added to the offline ones (never replacing them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from crdt.journal import Reflection

from ..engine.extract import Evidence, Extraction, Item, ItemKind, slug
from ..engine.lexicon import lexicon
from ..engine.mood import valence_of
from ..prompts import load_prompt
from .client import LLMTarget, chat

MAX_ITEMS_PER_KIND = 8
MAX_NAME_CHARS = 60
MAX_ANSWER_CHARS = 100_000
MAX_REFLECTION_CHARS = 8000

SCHEMA_KINDS: dict[str, ItemKind] = {
    "themes": "theme",
    "emotions": "emotion",
    "values": "value",
    "beliefs": "belief",
    "roles": "role",
    "people": "person",
    "tensions": "tension",
}

_FENCE_RE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


class MalformedAnswer(ValueError):
    """The model's answer holds no usable JSON object."""


def _balanced_object(text: str) -> str | None:
    start = text.find("{")
    while start >= 0:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            c = text[i]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    return text[start : i + 1]
        start = text.find("{", start + 1)
    return None


def parse_answer(answer: str) -> dict[str, Any]:
    """The JSON object in *answer*, repaired if it can be; else MalformedAnswer."""
    answer = answer[:MAX_ANSWER_CHARS]
    candidates = [answer.strip()]
    candidates += [m.group(1).strip() for m in _FENCE_RE.finditer(answer)]
    found = _balanced_object(answer)
    if found:
        candidates.append(found)
    for text in candidates:
        for attempt in (text, _TRAILING_COMMA_RE.sub(r"\1", text)):
            try:
                data = json.loads(attempt)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(data, dict):
                return data
    raise MalformedAnswer("the model's answer is not a JSON object")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _locate(text: str, quote: str) -> tuple[int, int] | None:
    """Where *quote* occurs in *text*, ignoring case and runs of whitespace."""
    words = quote.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    m = re.search(pattern, text, re.IGNORECASE)
    return (m.start(), m.end()) if m else None


def validate(data: Mapping[str, Any], reflection: Reflection) -> list[Item]:
    """Findings of *data* that fit the schema and quote the reflection."""
    text = reflection.text
    items: list[Item] = []
    for field, kind in SCHEMA_KINDS.items():
        raw = data.get(field)
        if not isinstance(raw, list):
            continue
        for entry in raw[:MAX_ITEMS_PER_KIND]:
            item = _item(kind, entry, text, reflection.id)
            if item is not None:
                items.append(item)
    return items


def _item(kind: ItemKind, entry: Any, text: str, rid: str) -> Item | None:
    if isinstance(entry, str):
        entry = {"name": entry}
    if not isinstance(entry, dict):
        return None
    quote = entry.get("quote")
    quote = quote if isinstance(quote, str) else ""
    poles: tuple[str, str] | None = None
    if kind == "tension":
        raw_a, raw_b = entry.get("a"), entry.get("b")
        if not (isinstance(raw_a, str) and isinstance(raw_b, str)):
            return None
        a, b = slug(raw_a)[:MAX_NAME_CHARS], slug(raw_b)[:MAX_NAME_CHARS]
        if not a or not b or a == b:
            return None
        name, poles = f"{a} vs {b}", (a, b)
    else:
        raw_name = entry.get("name")
        if not isinstance(raw_name, str):
            return None
        name = slug(raw_name)[:MAX_NAME_CHARS]
        if not name:
            return None
        if not quote:
            quote = raw_name  # repair: the name itself, if the text says it
    where = _locate(text, quote)
    if where is None:
        return None  # no evidence in the text: rejected
    start, end = where
    evidence = Evidence(rid, " ".join(text[start:end].split()), start, end)
    if poles is not None:
        return Item("tension", name, name, evidence, poles=poles, intensity=1)
    return Item(kind, name, name, evidence)


def merge(offline: Extraction, found: list[Item]) -> Extraction:
    """*offline* plus what the model found that it did not; never a positive feeling
    read into a reflection at risk of harm (the model may call it "relief", "peace")."""
    have = {i.node_id for i in offline.items}
    extra = tuple(
        i for i in found
        if i.node_id not in have and not (offline.risk and is_positive_feeling(i))
    )
    return replace(offline, items=offline.items + extra, source="offline+llm")


def is_positive_feeling(item: Item) -> bool:
    """An emotion item whose name is a positive family or word, or reads positive."""
    if item.kind != "emotion":
        return False
    lex = lexicon()
    words = tuple(item.key.split())
    family = lex.feelings.match_at(words, 0) if words else None
    if item.key in lex.positive_families or (family and family[1] in lex.positive_families):
        return True
    return valence_of(item.label).score > 0


def extraction_messages(reflection: Reflection, prompts_dir: Path | None) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": load_prompt("extract.md", prompts_dir)},
        {"role": "user", "content": reflection.text[:MAX_REFLECTION_CHARS]},
    ]


async def llm_extract(
    target: LLMTarget,
    reflection: Reflection,
    offline: Extraction,
    *,
    prompts_dir: Path | None = None,
) -> Extraction:
    """The offline extraction enriched by the model's validated findings.

    Raises LLMError (no answer) or MalformedAnswer (no JSON): callers keep
    the offline extraction then."""
    answer = await chat(target, extraction_messages(reflection, prompts_dir), json_mode=True)
    return merge(offline, validate(parse_answer(answer), reflection))
