"""Recall and false alarms of the offline crisis net on the labelled evaluation sets.

Run: .venv/bin/python bench/safety.py [--misses] [--kinds] [--held-out] [FILE.jsonl ...]
--held-out: leave one batch out — for each fresh and blind batch, the learned lexicon
built without it, and the batch scored by the net without the lexicon and with it.
Default: every set in tests/fixtures/safety/ (docs/safety.md says how each was
written and when it was tuned on), each and all together. A risk line counts as
found with either tier (crisis or check-in).
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

SETS = tuple(REPO / "tests/fixtures/safety" / f"{name}.jsonl"
             for name in ("dev", "heldout", "blind", "blind2", "blind3", "blind4", "blind5",
                          *(f"fresh{n}" for n in range(1, 9))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--misses", action="store_true", help="list every line it gets wrong")
    parser.add_argument("--kinds", action="store_true", help="figures per kind of line")
    parser.add_argument("--held-out", action="store_true",
                        help="leave one batch out: the learned lexicon on unseen batches")
    args = parser.parse_args()
    if args.held_out:
        return held_out_report()
    rule_set()  # compiled once, outside the timing
    paths = args.files or list(SETS)
    everything: list[dict[str, str]] = []
    for path in paths:
        rows = load_rows(path)
        everything += rows
        report(path.name, rows, args.kinds, args.misses)
    if len(paths) > 1:
        report("all of them", everything, kinds=False, misses=False)
    return 0


def held_out_report() -> int:
    from node.engine.safety.build_lexicon import held_out, held_out_journals

    started = time.perf_counter()
    figures = held_out()
    print("leave one batch out: the net without the learned lexicon → with one built "
          "without the batch")
    groups: dict[str, list[int]] = {}
    for h in figures:
        print(f"  {h.batch:<8} recall {h.found_before}/{h.risk} = {h.found_before / h.risk:.1%}"
              f" → {h.found_after / h.risk:.1%}; false alarms {h.alarms_before}/{h.negatives}"
              f" = {h.alarms_before / h.negatives:.1%} → {h.alarms_after / h.negatives:.1%}")
        for group in ("fresh" if h.batch.startswith("fresh") else "blind", "pooled"):
            g = groups.setdefault(group, [0] * 6)
            for i, v in enumerate((h.risk, h.negatives, h.found_before, h.alarms_before,
                                   h.found_after, h.alarms_after)):
                g[i] += v
    for group in ("fresh", "blind", "pooled"):
        risk, neg, fb, ab, fa, aa = groups[group]
        print(f"  {group:<8} recall {fb}/{risk} = {fb / risk:.1%} → {fa}/{risk} = "
              f"{fa / risk:.1%}; false alarms {ab}/{neg} = {ab / neg:.1%} → {aa}/{neg} = "
              f"{aa / neg:.1%}")
    flagged, entries = held_out_journals()
    print(f"  ordinary journal entries it alone flags, built without them: {flagged}/{entries}"
          f" = {flagged / entries:.1%}")
    print(f"  ({time.perf_counter() - started:.0f} s)")
    return 0


def report(name: str, rows: list[dict[str, str]], kinds: bool, misses: bool) -> None:
    started = time.perf_counter()
    s = score(rows)
    ms = (time.perf_counter() - started) * 1000 / max(1, len(rows))
    print(f"{name}: {len(rows)} lines")
    print(f"  recall on risk lines:       {s.found}/{s.risk_lines} = {s.recall:.1%} "
          f"({s.found_as_crisis} as crisis, {s.found - s.found_as_crisis} as check-in)")
    print(f"  false alarms on negatives:  {s.false_alarms}/{s.negative_lines} = "
          f"{s.false_alarm_rate:.1%}")
    print(f"  time per line:              {ms:.2f} ms")
    if kinds:
        for kind, (right, total) in s.by_kind.items():
            print(f"    {kind:<28} {right}/{total}")
    if misses:
        for m in s.misses:
            print(f"    [{m.label}:{m.kind} → {m.got} {m.rule}] {m.text}")


if __name__ == "__main__":
    sys.exit(main())
