"""Recall and false alarms of the offline crisis net on the labelled evaluation sets.

Run: .venv/bin/python bench/safety.py [--misses] [FILE.jsonl ...]
Default: tests/fixtures/safety/dev.jsonl (the set the rules were developed on)
and tests/fixtures/safety/heldout.jsonl (written before the detector and never
tuned on). A risk line counts as found with either tier (crisis or check-in).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node.engine.safety.evaluate import load_rows, score
from node.engine.safety.rules import rule_set

SETS = (REPO / "tests/fixtures/safety/dev.jsonl", REPO / "tests/fixtures/safety/heldout.jsonl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--misses", action="store_true", help="list every line it gets wrong")
    parser.add_argument("--kinds", action="store_true", help="figures per kind of line")
    args = parser.parse_args()
    rule_set()  # compiled once, outside the timing
    for path in args.files or SETS:
        rows = load_rows(path)
        started = time.perf_counter()
        s = score(rows)
        ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
        print(f"{path.name}: {len(rows)} lines")
        print(f"  recall on risk lines:       {s.found}/{s.risk_lines} = {s.recall:.1%} "
              f"({s.found_as_crisis} as crisis, {s.found - s.found_as_crisis} as check-in)")
        print(f"  false alarms on negatives:  {s.false_alarms}/{s.negative_lines} = "
              f"{s.false_alarm_rate:.1%}")
        print(f"  time per line:              {ms:.2f} ms")
        if args.kinds:
            for kind, (right, total) in s.by_kind.items():
                print(f"    {kind:<28} {right}/{total}")
        if args.misses:
            for m in s.misses:
                print(f"    [{m.label}:{m.kind} → {m.got} {m.rule}] {m.text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
