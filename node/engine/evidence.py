"""Stale evidence: derived records that quote what the journal no longer says.

A derived record (a graph node, a tension, a pattern) keeps its evidence as one
list value, written whole each time a reflection is folded into it. A process
(or a device) that folds a new reflection while another one deletes or edits
an older reflection writes the list as it last saw it — with the old quote —
and CRDT merging may keep that write. The deleted words are then live again,
in a record, after the delete said they were gone.

Nothing can order two processes' writes, so this is repaired after the fact:
whoever writes records checks them afterwards against the journal it can see
by then (:func:`stale_records`), and derives again any record whose evidence
names a reflection that is gone, or quotes words its reflection no longer has.
Quotes are always taken from the reflection's text (offline extraction, and
the LLM extraction after it located the quote), whitespace-normalised, so "a
quote its reflection still has" is a substring test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pycrdt import Map

from .derive import Touched
from .extract import Extraction

TextOf = Callable[[str], "str | None"]
"""The current text of a reflection by id, or None if it is not in the journal."""

ROOT_FIELDS = ("nodes", "edges", "tensions", "recurring", "loops")
"""The fields of :class:`~node.engine.derive.Touched`, one per root that holds evidence."""


def normalised(text: str) -> str:
    return " ".join(text.split())


def cited(evidence: Any) -> Iterable[tuple[str, str | None]]:
    """(reflection id, quote or None) of each entry of a record's evidence list."""
    if not isinstance(evidence, list):
        return
    for entry in evidence:
        if isinstance(entry, dict):
            rid, quote = entry.get("rid"), entry.get("quote")
            if isinstance(rid, str):
                yield rid, quote if isinstance(quote, str) else None
        elif isinstance(entry, str):  # an edge lists bare ids
            yield entry, None


def quotes_hold(rid: str, quote: str | None, text_of: TextOf) -> bool:
    """Whether reflection *rid* is in the journal and still says *quote*."""
    text = text_of(rid)
    if text is None:
        return False
    return quote is None or normalised(quote) in normalised(text)


def stale_keys(
    records: Iterable[tuple[str, Any]], text_of: TextOf, stale_rids: set[str]
) -> frozenset[str]:
    """Keys of *records* (key, record Map) whose evidence no longer holds; the
    reflections still in the journal that such evidence misquotes go into
    *stale_rids*."""
    keys = set()
    for key, value in records:
        if not isinstance(value, Map):
            continue
        for rid, quote in cited(value.get("evidence")):
            if not quotes_hold(rid, quote, text_of):
                keys.add(key)
                if text_of(rid) is not None:
                    stale_rids.add(rid)
    return frozenset(keys)


def stale_records(
    roots: Mapping[str, Iterable[tuple[str, Any]]], text_of: TextOf, stale_rids: set[str]
) -> Touched:
    """The records of one scope, by :data:`ROOT_FIELDS` name, whose evidence no
    longer holds (see :func:`stale_keys`)."""
    found = {name: stale_keys(roots.get(name, ()), text_of, stale_rids) for name in ROOT_FIELDS}
    return Touched(**found)


def extraction_holds(x: Extraction, text_of: TextOf) -> bool:
    """Whether every quote of an index entry is still in its reflection's text."""
    quotes = [i.evidence.quote for i in x.items] + [lp.evidence.quote for lp in x.loops]
    return all(quotes_hold(x.rid, q, text_of) for q in quotes)
