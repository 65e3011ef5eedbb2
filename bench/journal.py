"""Benchmark of the journal conventions with 10,000 reflections: ranked search, tag
counts, stats, on this day, a date filter (node/journal), all in memory over what
``Journal.all()`` returns. No target was set for the CLI; the browser's (issue 18:
search <= 50 ms) needs an index kept between requests, which this is not.

Run: .venv/bin/python bench/journal.py [--reflections 10000] [--words 60]
Texts: seeded words from a 3,000-word vocabulary with Zipf weights, so that common
words are in almost every reflection (the worst case for a search) and rare ones
in few.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from crdt.journal import Reflection
from node.journal.query import journal_filter
from node.journal.search import search
from node.journal.stats import journal_stats, on_this_day
from node.journal.tags import tag_counts

RUNS = 5


def corpus(n: int, words: int) -> list[Reflection]:
    rng = random.Random(7)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(3000)]
    vocab[5], vocab[900] = "worried", "deadline"  # a common word and a rare one
    weights = [1 / (k + 1) for k in range(len(vocab))]
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return [Reflection(id=f"r{i:011d}", created_at=t0 + timedelta(hours=3 * i),
                       text=" ".join(rng.choices(vocab, weights, k=words)),
                       tags=(rng.choice(vocab[:50]),)) for i in range(n)]


def median_ms(fn: Callable[[], object]) -> float:
    fn()
    runs = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reflections", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=60)
    args = parser.parse_args()
    items = corpus(args.reflections, args.words)
    today = date(2027, 6, 1)
    now = datetime(2027, 6, 1, 12, tzinfo=UTC)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("search, a rare word ('deadline')", lambda: search(items, "deadline", limit=20)),
        ("search, a common word and a rare one", lambda: search(items, "worried deadline",
                                                                 limit=20)),
        ("tag counts", lambda: tag_counts(items)),
        ("stats (12 weeks, streaks, words)", lambda: journal_stats(items, today, zone=UTC)),
        ("on this day", lambda: on_this_day(items, today, UTC)),
        ("filter --from '2 weeks ago' -n 20",
         lambda: journal_filter(now=now, zone=UTC, from_="2 weeks ago", limit=20).apply(items)),
    ]
    print(f"{len(items)} reflections of {args.words} words; median of {RUNS} runs")
    for name, fn in cases:
        print(f"  {name}: {median_ms(fn):.0f} ms")


if __name__ == "__main__":
    main()
