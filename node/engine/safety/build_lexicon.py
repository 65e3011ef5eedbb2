"""Builds ``learned.json``, the learned lexicon (``learned``), from the labelled sets.

Run: .venv/bin/python -m node.engine.safety.build_lexicon [--check]

A maintainer tool, never imported at runtime. For every word and adjacent word pair
(as the normaliser reads them) in the labelled sets (``tests/fixtures/safety/*.jsonl``,
and the ordinary journals ``tests/fixtures/personas/*.json``, ``journal.json`` as lines
not at risk):
``a`` risk lines and ``b`` other lines contain it; if ``a + b >= MIN_SEEN`` its weight is
the smoothed log-odds ``log((a + ½) / (R + 1)) − log((b + ½) / (N + 1))`` (R, N: the
risk and other lines), rounded, kept when ``|weight| >= MIN_WEIGHT``. Deterministic:
the same sets give the same file, byte for byte (``tests/test_safety_learned.py``
holds the shipped file to it). ``--check`` exits 1 if the shipped file differs.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .detect import assess
from .evaluate import load_rows
from .learned import compile_lexicon, features
from .normalize import normalize
from .rules import base_rule_set

MIN_SEEN = 2
MIN_WEIGHT = 0.25  # a feature as common in risk lines as in others says nothing
THRESHOLD = 8.0  # the sum a window must reach (docs/safety.md: how it was chosen)
DECIMALS = 3
REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures"
SETS = FIXTURES / "safety"
SHIPPED = Path(__file__).resolve().parent / "learned.json"

Row = tuple[bool, frozenset[str]]  # (is a risk line, its features)


def line_features(text: str) -> frozenset[str]:
    return frozenset(features(normalize(text, base_rule_set().vocabulary).tokens))


def journal_files(fixtures: Path = FIXTURES) -> list[Path]:
    """The persona journals and the sample journal: months of ordinary lives, none at
    risk — long entries in a journal's voice, which the short labelled lines lack."""
    return [*sorted((fixtures / "personas").glob("*.json")), fixtures / "journal.json"]


def journal_entries(files: Iterable[Path]) -> list[str]:
    return [r["text"] for path in files
            for r in json.loads(path.read_text("utf-8"))["reflections"]]


def read_sets(directory: Path = SETS, journals: Sequence[Path] | None = None
              ) -> dict[str, list[Row]]:
    """Every labelled set in *directory*, by name, as (risk?, features) rows, and the
    ordinary journals (*journals*, default all of them) as ``journals``, every entry
    a line that is not at risk."""
    sets = {path.stem: [(row["label"] == "risk", line_features(row["text"]))
                        for row in load_rows(path)]
            for path in sorted(directory.glob("*.jsonl"))}
    files = journal_files() if journals is None else journals
    sets["journals"] = [(False, line_features(t)) for t in journal_entries(files)]
    return sets


def build(sets: Mapping[str, Sequence[Row]], threshold: float = THRESHOLD,
          leave_out: Iterable[str] = ()) -> dict[str, Any]:
    """The lexicon as a JSON-ready mapping, from *sets* but those in *leave_out*."""
    left_out = set(leave_out)
    used = sorted(name for name in sets if name not in left_out)
    risk: Counter[str] = Counter()
    other: Counter[str] = Counter()
    lines = Counter[bool]()
    for name in used:
        for is_risk, feats in sets[name]:
            lines[is_risk] += 1
            (risk if is_risk else other).update(feats)
    terms: dict[str, float] = {}
    pairs: dict[str, float] = {}
    for f in sorted(risk.keys() | other.keys()):
        a, b = risk[f], other[f]
        if a + b < MIN_SEEN:
            continue
        w = round(math.log((a + 0.5) / (lines[True] + 1))
                  - math.log((b + 0.5) / (lines[False] + 1)), DECIMALS)
        if abs(w) >= MIN_WEIGHT:
            (pairs if " " in f else terms)[f] = w
    body: dict[str, Any] = {"threshold": threshold, "sets": used,
                            "min_seen": MIN_SEEN, "min_weight": MIN_WEIGHT,
                            "terms": terms, "pairs": pairs}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"about": "Words and word pairs with the log-odds of a line containing them "
                     "being a risk line, counted over Mirror's own labelled sets by "
                     "node/engine/safety/build_lexicon.py. Check-in tier only.",
            "digest": digest, **body}


HELD_OUT_BATCHES = (*(f"fresh{n}" for n in range(1, 9)), "blind", "blind2", "blind3",
                    "blind4", "blind5")


@dataclass(frozen=True)
class HeldOut:
    """One batch scored by the net without the lexicon and with one built without it."""

    batch: str
    risk: int
    negatives: int
    found_before: int
    alarms_before: int
    found_after: int
    alarms_after: int


def held_out(batches: Sequence[str] = HELD_OUT_BATCHES, directory: Path = SETS,
             threshold: float = THRESHOLD) -> list[HeldOut]:
    """Leave one batch out: for each of *batches*, the lexicon built from every other
    set, and the batch scored by the rules and scored layer alone, then with it."""
    sets = read_sets(directory)
    base = base_rule_set()
    out = []
    for batch in batches:
        layered = replace(base, lexicon=compile_lexicon(
            build(sets, threshold, leave_out=[batch])))
        counts = Counter[str]()
        for row in load_rows(directory / f"{batch}.jsonl"):
            label = "risk" if row["label"] == "risk" else "none"
            counts[label] += 1
            before = assess(row["text"], base).top is not None
            # the lexicon only reads an entry in which nothing else was found
            after = before or assess(row["text"], layered).top is not None
            counts[f"{label} before"] += before
            counts[f"{label} after"] += after
        out.append(HeldOut(batch, counts["risk"], counts["none"], counts["risk before"],
                           counts["none before"], counts["risk after"], counts["none after"]))
    return out


def held_out_journals(threshold: float = THRESHOLD) -> tuple[int, int]:
    """Ordinary journal entries the lexicon alone flags when built without them: the
    journal files split in two, each half scored by a lexicon built with the other.
    Returns (flagged, entries)."""
    files = journal_files()
    base = base_rule_set()
    flagged = entries = 0
    for held, kept in ((files[0::2], files[1::2]), (files[1::2], files[0::2])):
        layered = replace(base, lexicon=compile_lexicon(
            build(read_sets(journals=kept), threshold)))
        for text in journal_entries(held):
            entries += 1
            flagged += (assess(text, base).top is None
                        and assess(text, layered).top is not None)
    return flagged, entries


def dumps(lexicon: Mapping[str, Any]) -> str:
    return json.dumps(lexicon, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: Sequence[str]) -> int:
    text = dumps(build(read_sets()))
    if "--check" in argv:
        same = SHIPPED.read_text("utf-8") == text
        print("learned.json is what the sets build" if same else "learned.json differs")
        return 0 if same else 1
    SHIPPED.write_text(text, "utf-8")
    print(f"wrote {SHIPPED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
