"""Benchmark of the document store and the node's one-shot paths.

    .venv/bin/python bench/store.py [--n 10000] [--keep DIR]
    .venv/bin/python bench/store.py --startup [--against DIR] [--runs 7]

With N reflections of about 500 characters it measures, each against its target
on a 2-core machine: batch import, cold open of the home (a new process),
compaction of a home whose log holds many small updates, RSS with everything
loaded, a one-shot ``mirror reflect`` (wall time of the whole process), and how
long the REPL takes to show its prompt. Each figure is the median of a few runs.

``--startup`` measures start-up alone in a small home: ``mirror --help``, a
one-shot ``mirror reflect`` and the REPL's prompt; with ``--against DIR`` (another
checkout, e.g. ``git worktree add DIR main``) it times both trees in turn, run
by run, and prints the ratio this/other of the medians, which holds on a busy
machine where absolute times do not.
"""

from __future__ import annotations

import argparse
import os
import pty
import random
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from crdt import open_store
from crdt.journal import Journal, Reflection, new_reflection_id

WORDS = (
    "work money sleep family morning tired hopeful anxious Sam mother sister boss "
    "deadline walk ocean quiet pressure control scarcity enough rest body breath "
    "friend call argument laugh write plan fear want need should could maybe"
).split()


def sample_text(rng: random.Random, chars: int = 500) -> str:
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(WORDS))
    return (" ".join(out))[:chars].capitalize() + "."


def make_reflections(n: int, seed: int = 1) -> list[Reflection]:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    span = timedelta(days=600)
    return [
        Reflection(
            new_reflection_id(),
            start + span * (i / n),
            sample_text(rng),
            tags=(rng.choice(["work", "home", "health"]),),
        )
        for i in range(n)
    ]


def child_env(home: Path, tree: Path = REPO) -> dict[str, str]:
    return {**os.environ, "MIRROR_HOME": str(home), "PYTHONPATH": str(tree)}


COLD_OPEN = """
import time, sys
t0 = time.perf_counter()
import trio
from node.core import open_core
from node.home import Home
async def main():
    async with open_core(Home.resolve(None)) as core:
        n = await core.journal.count()
        t1 = time.perf_counter()
        # VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork+exec
        status = open("/proc/self/status").read().splitlines()
        hwm = next(int(ln.split()[1]) for ln in status if ln.startswith("VmHWM:"))
        print(n, t1 - t0, hwm / 1024)
trio.run(main)
"""


def median(values: list[float]) -> float:
    return statistics.median(values)


def report(name: str, value: float, target: float, unit: str) -> bool:
    ok = value <= target
    verdict = "ok" if ok else "MISS"
    print(f"{name:<44} {value:9.3f} {unit:<3} target <= {target:g} {unit}  {verdict}")
    return ok


async def import_batch(db: Path, items: list[Reflection]) -> float:
    async with open_store(db) as store:
        t0 = time.perf_counter()
        await Journal(store).add_many(items)
        return time.perf_counter() - t0


async def compaction_run(db: Path, items: list[Reflection], small_updates: int) -> float:
    async with open_store(db, compact_after_updates=0) as store:
        journal = Journal(store)
        await journal.add_many(items)
        for i in range(small_updates):
            await journal.add(f"small update {i}", durable=False)
        await store.wait_durable()
        t0 = time.perf_counter()
        await store.compact()
        return time.perf_counter() - t0


def repl_ready(home: Path, tree: Path = REPO) -> float:
    """Seconds from starting ``mirror`` in a terminal to its prompt appearing."""
    env = {**child_env(home, tree), "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1"}
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(tree)
        os.execvpe(sys.executable, [sys.executable, "-m", "node.cli"], env)
    t0 = time.perf_counter()
    seen = b""
    try:
        while time.perf_counter() - t0 < 20:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    break
                if b"/help" in seen and b"mirror>" in seen:
                    return time.perf_counter() - t0
        raise RuntimeError(f"no prompt within 20 s: {seen[-300:]!r}")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def one_run(argv: list[str], home: Path, tree: Path) -> float:
    """Wall seconds of ``python -m node.cli ARGV`` run from *tree*."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "node.cli", *argv], env=child_env(home, tree),
                   cwd=tree, capture_output=True, check=True)
    return time.perf_counter() - t0


STARTUP_TARGETS = {"help": 0.15, "reflect": 0.3, "repl": 0.4}  # seconds, idle machine


def startup(runs: int, against: Path | None) -> list[bool]:
    """Start-up of the three entry points, in *REPO* (and in *against*, alternately)."""
    trees = [REPO] + ([against] if against is not None else [])
    tmp = Path(tempfile.mkdtemp(prefix="mirror-startup-"))
    times: dict[tuple[str, Path], list[float]] = {}
    try:
        homes = {tree: tmp / f"home{i}" for i, tree in enumerate(trees)}
        for tree in trees:  # a home with a few reflections, created by that tree itself
            for i in range(3):
                one_run(["reflect", f"a first thought about rest, number {i}"], homes[tree], tree)
        for i in range(runs):
            for tree in trees:
                home = homes[tree]
                times.setdefault(("help", tree), []).append(one_run(["--help"], home, tree))
                times.setdefault(("reflect", tree), []).append(
                    one_run(["reflect", f"one more thought about work, number {i}"], home, tree))
                times.setdefault(("repl", tree), []).append(repl_ready(home, tree))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    names = {"help": "`mirror --help`, wall", "reflect": "`mirror reflect` one-shot, wall",
             "repl": "REPL ready (prompt shown)"}
    results = []
    for key, target in STARTUP_TARGETS.items():
        value = median(times[(key, REPO)])
        results.append(report(names[key], value, target, "s"))
        if against is not None:
            other = median(times[(key, against)])
            print(f"{'':<44} {other:9.3f} s   in {against} (this/other {value / other:.2f})")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", help="keep the generated home in this directory")
    parser.add_argument("--startup", action="store_true", help="measure start-up only")
    parser.add_argument("--against", type=Path, help="with --startup: another checkout")
    args = parser.parse_args()
    if args.startup:
        print(f"start-up benchmark, python {sys.version.split()[0]}, {os.cpu_count()} cores")
        met = startup(args.runs, args.against)
        print(f"{sum(met)}/{len(met)} targets met (targets are for an idle machine)")
        return 0
    items = make_reflections(args.n)
    raw = sum(len(r.text) for r in items)
    print(f"store benchmark: {args.n} reflections, {raw / 1e6:.1f} MB of text, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    results: list[bool] = []
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
    try:
        imports = []
        for run in range(args.runs):
            imports.append(trio.run(import_batch, tmp / f"import{run}.db", items))
        results.append(report(f"import {args.n} in one batch", median(imports), 1.0, "s"))

        home = tmp / "home"
        home.mkdir()
        shutil.copy(tmp / "import0.db", home / "mirror.db")
        opens, rss = [], []
        for _ in range(args.runs):
            out = subprocess.run([sys.executable, "-c", COLD_OPEN], env=child_env(home),
                                 capture_output=True, text=True, check=True).stdout.split()
            assert int(out[0]) == args.n, out
            opens.append(float(out[1]))
            rss.append(float(out[2]))
        results.append(report("cold open (imports + load all, new process)",
                              median(opens), 0.3, "s"))
        results.append(report("RSS with everything loaded", max(rss), 80, "MB"))

        compactions = []
        for run in range(args.runs):
            compactions.append(trio.run(compaction_run, tmp / f"compact{run}.db", items, 1000))
        results.append(report(f"compaction ({args.n} + 1000 small updates)",
                              median(compactions), 0.5, "s"))

        walls = []
        mirror = [sys.executable, "-m", "node.cli", "reflect", "--tag", "bench"]
        for i in range(max(3, args.runs)):
            t0 = time.perf_counter()
            subprocess.run([*mirror, f"one more thought about work and rest, number {i}"],
                           env=child_env(home), capture_output=True, check=True)
            walls.append(time.perf_counter() - t0)
        results.append(report("`mirror reflect` one-shot, wall", median(walls),
                              STARTUP_TARGETS["reflect"], "s"))

        try:
            readies = [repl_ready(home) for _ in range(args.runs)]
            results.append(report("REPL ready (prompt shown)", median(readies),
                                  STARTUP_TARGETS["repl"], "s"))
        except (RuntimeError, OSError) as exc:
            print(f"REPL ready: not measured ({exc})")
            results.append(False)
        if args.keep:
            shutil.copytree(home, Path(args.keep), dirs_exist_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{sum(results)}/{len(results)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
