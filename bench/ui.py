"""The local web interface with 10,000 reflections: start-up, server time per request, RSS.

Run: .venv/bin/python bench/ui.py [--n 10000] [--runs 20]

Builds a home with N reflections (~2 years, tags on a third, 10 % private) and lets
the engine learn from all of them (``reindex``), then starts ``mirror ui --no-browser``
as its own process, as a person would, and measures:

- start-up: from spawning the process to the first page served (the launch link,
  then ``/`` with the session cookie), whole-process wall time;
- server time of a journal page, a search, and each chart's data: the
  ``Server-Timing`` header the server sets (time inside the app, not the network),
  median of ``--runs`` requests after one warm-up;
- the RSS peak (VmHWM) of the ``mirror ui`` process at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from crdt.journal import Reflection, new_reflection_id
from node.core import open_core
from node.home import Home
from tests.ui_helpers import start_ui_process

TARGET_START_S = 1.0
TARGET_JOURNAL_MS = 50.0
TARGET_SEARCH_MS = 50.0
TARGET_CHART_MS = 100.0
TARGET_RSS_MB = 150.0

WORDS = ("work deadline manager family dinner walk river calm anxious tired sleep friend "
         "mother father sister brother money rent garden music book run rain morning night "
         "honest angry grateful lonely hope change move city home quiet coffee trip").split()
TAGS = ("work", "family", "health", "friends", "money")
SEARCHES = ("river", "anxious morning", "deadline manager", "#work", "grateful sister")
CHARTS = ("/api/tensions", "/api/mood", "/api/patterns", "/api/graph")


def make_text(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(3, 6)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 14))]
        sentences.append("I " + " ".join(words) + ".")
    return " ".join(sentences)


async def build_home(home: Home, n: int) -> float:
    rng = random.Random(18)
    start = datetime.now(UTC) - timedelta(days=730)
    step = timedelta(days=730) / n
    items = [
        Reflection(new_reflection_id(), start + step * i, make_text(rng),
                   tags=(rng.choice(TAGS),) if rng.random() < 0.33 else (),
                   private=rng.random() < 0.1)
        for i in range(n)
    ]
    home.ensure()
    async with open_core(home) as core:
        await core.journal.add_many(items)
        t = time.perf_counter()
        await core.understanding.rebuild()
        return time.perf_counter() - t


def server_ms(client: httpx.Client, url: str, runs: int) -> float:
    client.get(url).raise_for_status()  # warm-up (the first read loads the shards)
    times = []
    for _ in range(runs):
        response = client.get(url)
        response.raise_for_status()
        timing = response.headers["server-timing"]
        times.append(float(timing.split("dur=")[1]))
    return statistics.median(times)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def line(name: str, value: str, target: str, ok: bool) -> None:
    print(f"{name:<52} {value:>10}   target {target:<9} {'ok' if ok else 'MISSED'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="build the home in DIR once and reuse it on later runs "
                        "(learning from 10,000 reflections takes minutes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = (args.keep or Path(tmp)) / "home"
        if (home / "mirror.db").exists():
            print(f"setup: reusing {home}\n")
        else:
            t_learn = trio.run(build_home, Home(home), args.n)
            print(f"setup: {args.n} reflections, learned from in {t_learn:.1f} s\n")
        starts = []
        for _ in range(3):
            t = time.perf_counter()
            ui = start_ui_process(home)
            try:
                with httpx.Client(timeout=60) as client:
                    assert client.get(ui.launch_url).status_code == 303
                    client.get(ui.base + "/").raise_for_status()
                    starts.append(time.perf_counter() - t)
            finally:
                ui.stop()
        ui = start_ui_process(home)
        try:
            with httpx.Client(timeout=120, base_url=ui.base) as client:
                client.get(ui.launch_url)
                t = time.perf_counter()
                client.get("/api/journal").raise_for_status()
                first_journal = time.perf_counter() - t
                journal = server_ms(client, "/api/journal?page=3", args.runs)
                filtered = server_ms(client, "/api/journal?tag=work&from=2026-01-01",
                                     args.runs)
                search = max(server_ms(client, f"/api/journal?q={q}", args.runs)
                             for q in SEARCHES)
                charts = {path: server_ms(client, path, max(3, args.runs // 4))
                          for path in CHARTS}
            rss = rss_mb(ui.process.pid)
        finally:
            ui.stop()
    start_s = statistics.median(starts)
    line("`mirror ui` to first page served (median of 3)", f"{start_s:.2f} s",
         f"≤ {TARGET_START_S:.0f} s", start_s <= TARGET_START_S)
    line("first journal page, cold (loads every shard)", f"{first_journal * 1000:.0f} ms",
         "—", True)
    line("journal page, server time (median)", f"{journal:.1f} ms",
         f"≤ {TARGET_JOURNAL_MS:.0f} ms", journal <= TARGET_JOURNAL_MS)
    line("journal filtered by tag and date, server time", f"{filtered:.1f} ms",
         f"≤ {TARGET_JOURNAL_MS:.0f} ms", filtered <= TARGET_JOURNAL_MS)
    line(f"search, slowest of {len(SEARCHES)} queries (median each)", f"{search:.1f} ms",
         f"≤ {TARGET_SEARCH_MS:.0f} ms", search <= TARGET_SEARCH_MS)
    for path, value in charts.items():
        line(f"chart data {path}, server time", f"{value:.1f} ms",
             f"≤ {TARGET_CHART_MS:.0f} ms", value <= TARGET_CHART_MS)
    line("RSS peak (VmHWM) of the ui process", f"{rss:.0f} MB", f"≤ {TARGET_RSS_MB:.0f} MB",
         rss <= TARGET_RSS_MB)
    print(f"\n(python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
