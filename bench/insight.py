"""Precision and recall of tensions and loops on the hand-labelled persona journals.

Scores what ``mirror tensions`` and ``mirror patterns`` show for each journal in
tests/fixtures/personas/ against the tensions and loops marked there by hand
(matching rules: tests/persona_eval.py). Journals marked ``held_out`` were never
used to tune the offline engine; they are reported apart.

Goal (issue 16): recall >= 80 % of the marked tensions and loops at precision
>= 70 %.

Run: .venv/bin/python bench/insight.py [--verbose] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.persona_eval import PersonaResult, Score, evaluate, load_personas

GOAL_RECALL = 0.80
GOAL_PRECISION = 0.70


def pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def row(name: str, t: Score, lp: Score) -> str:
    status = f"{t.status_right}/{t.right}" if t.right else "-"
    return (f"| {name} | {t.found}/{t.labelled} | {pct(t.recall)} | {pct(t.precision)} "
            f"({t.right}/{t.shown}) | {status} | {lp.found}/{lp.labelled} | {pct(lp.recall)} "
            f"| {pct(lp.precision)} ({lp.right}/{lp.shown}) |")


def table(results: list[PersonaResult], title: str) -> tuple[Score, Score]:
    print(f"\n{title}\n")
    print("| journal | tensions found | recall | precision | status right | loops found "
          "| recall | precision |")
    print("|---|---|---|---|---|---|---|---|")
    total_t, total_l = Score(), Score()
    for r in results:
        print(row(r.persona.name, r.tensions, r.loops))
        total_t.add(r.tensions)
        total_l.add(r.loops)
    print(row("**all**", total_t, total_l))
    return total_t, total_l


def verdict(name: str, s: Score) -> str:
    ok = s.recall >= GOAL_RECALL and s.precision >= GOAL_PRECISION
    return (f"{name}: recall {pct(s.recall)}, precision {pct(s.precision)} "
            f"(goal >= {pct(GOAL_RECALL)} at >= {pct(GOAL_PRECISION)}): "
            f"{'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--verbose", action="store_true", help="list misses and extras")
    parser.add_argument("--json", action="store_true", help="print JSON instead")
    parser.add_argument("--tuning-only", action="store_true",
                        help="leave the held-out journals out (while tuning)")
    args = parser.parse_args()
    results = [evaluate(p) for p in load_personas()
               if not (args.tuning_only and p.held_out)]
    if args.json:
        print(json.dumps([{
            "journal": r.persona.name, "held_out": r.persona.held_out, "set": r.persona.set,
            "tensions": {"labelled": r.tensions.labelled, "found": r.tensions.found,
                         "shown": r.tensions.shown, "right": r.tensions.right,
                         "status_right": r.tensions.status_right},
            "loops": {"labelled": r.loops.labelled, "found": r.loops.found,
                      "shown": r.loops.shown, "right": r.loops.right},
        } for r in results], indent=1))
        return
    sets: dict[str, list[PersonaResult]] = {}
    for r in results:
        sets.setdefault(r.persona.set, []).append(r)
    verdicts = []
    for name in sorted(sets, key=lambda k: (k != "tuning", k)):
        group = sets[name]
        title = (f"Journals used in tuning ({len(group)})" if name == "tuning" else
                 f"Held-out set {name} ({len(group)}), not in the tuning set")
        t, lp = table(group, title)
        verdicts += [(f"{name} tensions", t), (f"{name} loops", lp)]
    held = [r for r in results if r.persona.held_out]
    if len(sets) > 2 and held:
        t, lp = table(held, f"All held-out journals ({len(held)})")
        verdicts += [("all held-out tensions", t), ("all held-out loops", lp)]
    print()
    for name, score in verdicts:
        print(verdict(name, score))
    if args.verbose:
        for r in results:
            print(f"\n== {r.persona.name} ({r.persona.set})")
            for t in r.shown_tensions:
                print(f"   tension {t.key:28} {t.status:9} {t.occurrences}× stated {t.stated}")
            for lp in r.shown_loops:
                print(f"   loop    {lp.label} ({lp.count}×)")
            for m in r.tensions.misses + r.loops.misses:
                print(f"   MISSED  {m}")
            for x in r.tensions.extras + r.loops.extras:
                print(f"   EXTRA   {x}")


if __name__ == "__main__":
    main()
