"""An experiment, not part of the net: does a table of word statistics carry to a batch
the net was never tuned on better than the hand-written frames did?

Run: .venv/bin/python bench/safety_transfer.py [HELD_OUT ...]   (default: fresh8)

For each held-out batch: the log-odds of each word and word pair being in a risk line,
counted over every other labelled set (tests/fixtures/safety/), summed over a line's
features seen at least twice; the net alone, then the net with a line also counted as
found when that sum passes a threshold. docs/safety.md reports what it printed. The
shipped net uses no such table (the issue asks for no model).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node.engine.safety.detect import assess
from node.engine.safety.evaluate import load_rows
from node.engine.safety.normalize import CLAUSE_MARK, SENTENCE_MARK, normalize
from node.engine.safety.rules import rule_set

SETS = REPO / "tests/fixtures/safety"
THRESHOLDS = (4.0, 6.0, 8.0)
MIN_SEEN = 2


def features(text: str) -> set[str]:
    toks = [t for t in normalize(text, rule_set().vocabulary).tokens
            if t not in (SENTENCE_MARK, CLAUSE_MARK)]
    return set(toks) | {f"{a} {b}" for a, b in pairwise(toks)}


def main() -> int:
    held = sys.argv[1:] or ["fresh8"]
    train = [p for p in sorted(SETS.glob("*.jsonl")) if p.stem not in held]
    counts: dict[str, Counter[str]] = {"risk": Counter(), "none": Counter()}
    lines: Counter[str] = Counter()
    for path in train:
        for row in load_rows(path):
            lines[row["label"]] += 1
            counts[row["label"]].update(features(row["text"]))

    def log_odds(text: str) -> float:
        total = 0.0
        for f in features(text):
            a, b = counts["risk"][f], counts["none"][f]
            if a + b >= MIN_SEEN:
                total += (math.log((a + 0.5) / (lines["risk"] + 1))
                          - math.log((b + 0.5) / (lines["none"] + 1)))
        return total

    rows = [row for name in held for row in load_rows(SETS / f"{name}.jsonl")]
    risk = sum(r["label"] == "risk" for r in rows)
    net = [assess(r["text"]).top is not None for r in rows]
    odds = [log_odds(r["text"]) for r in rows]
    print(f"held out: {', '.join(held)} ({risk} risk, {len(rows) - risk} negatives); "
          f"table from {len(train)} other sets")

    def line(name: str, hits: list[bool]) -> None:
        found = sum(h for h, r in zip(hits, rows, strict=True) if r["label"] == "risk")
        alarms = sum(h for h, r in zip(hits, rows, strict=True) if r["label"] == "none")
        print(f"  {name:<24} recall {found}/{risk} = {found / risk:.1%}, "
              f"false alarms {alarms}/{len(rows) - risk} = {alarms / (len(rows) - risk):.1%}")

    line("net", net)
    for t in THRESHOLDS:
        line(f"net or table > {t:g}", [n or o > t for n, o in zip(net, odds, strict=True)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
