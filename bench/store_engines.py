"""The document store on SQLite and on PostgreSQL, side by side, in one run.

    .venv/bin/python bench/store_engines.py [--n 5000] [--writes 300] [--runs 3]

Both engines durable: SQLite with WAL and ``synchronous=FULL`` (the default), and a
PostgreSQL started here for the run (tests/postgres_helper.py: the ``postgres`` user,
127.0.0.1, a temporary directory) with ``fsync=on`` and ``synchronous_commit=on``,
reached over TCP on loopback. Each figure is the median of ``--runs`` runs on a fresh
store:

- batch import of N reflections (~500 characters) in one transaction;
- sequential durable writes: one reflection, then ``wait_durable``, one after another;
- group commit: 8 tasks writing durable reflections at once;
- opening the store and loading every journal shard;
- compaction of N reflections plus 1,000 small updates;
- ``refresh`` when nothing changed (the "has anyone written?" question).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.store import make_reflections
from crdt import open_store
from crdt.journal import Journal, Reflection
from tests.postgres_helper import PostgresServer, postgres_unavailable

WRITERS = 8


async def batch_import(where: Path | str, items: list[Reflection]) -> float:
    async with open_store(where) as store:
        t0 = time.perf_counter()
        await Journal(store).add_many(items)
        return time.perf_counter() - t0


async def sequential_writes(where: Path | str, count: int) -> float:
    async with open_store(where) as store:
        journal = Journal(store)
        t0 = time.perf_counter()
        for i in range(count):
            await journal.add(f"durable thought number {i}", durable=True)
        return count / (time.perf_counter() - t0)


async def grouped_writes(where: Path | str, count: int) -> float:
    async with open_store(where) as store:
        journal = Journal(store)

        async def writer(k: int) -> None:
            for i in range(count // WRITERS):
                await journal.add(f"writer {k} thought {i}", durable=True)

        await journal.add("warm up", durable=True)
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for k in range(WRITERS):
                nursery.start_soon(writer, k)
        return (count // WRITERS * WRITERS) / (time.perf_counter() - t0)


async def open_and_load(where: Path | str, items: list[Reflection]) -> float:
    async with open_store(where) as store:
        await Journal(store).add_many(items)
    t0 = time.perf_counter()
    async with open_store(where) as store:
        n = await Journal(store).count()
    assert n == len(items), n
    return time.perf_counter() - t0


async def compaction(where: Path | str, items: list[Reflection]) -> float:
    async with open_store(where, compact_after_updates=0) as store:
        journal = Journal(store)
        await journal.add_many(items)
        for i in range(1000):
            await journal.add(f"small update {i}", durable=False)
        await store.wait_durable()
        t0 = time.perf_counter()
        await store.compact()
        return time.perf_counter() - t0


async def idle_refresh(where: Path | str) -> float:
    async with open_store(where) as store:
        await Journal(store).add("one", durable=True)
        await store.refresh()
        t0 = time.perf_counter()
        for _ in range(1000):
            await store.refresh()
        return (time.perf_counter() - t0) / 1000 * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    reason = postgres_unavailable()
    if reason:
        print(f"PostgreSQL not measured: {reason}")
        return 1
    items = make_reflections(args.n)
    server = PostgresServer.start(durable=True)
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-engines-"))
    counter = iter(range(10**6))

    def fresh(engine: str) -> Path | str:
        if engine == "sqlite":
            return tmp / f"s{next(counter)}.db"
        return server.create_database(f"bench{next(counter)}")

    def measure(engine: str, fn: Callable[..., Awaitable[float]], *fargs: object) -> float:
        return statistics.median(trio.run(fn, fresh(engine), *fargs) for _ in range(args.runs))

    rows: list[tuple[str, str, Callable[[str], float]]] = [
        (f"batch import of {args.n} reflections", "s",
         lambda e: measure(e, batch_import, items)),
        ("sequential durable writes", "/s", lambda e: measure(e, sequential_writes, args.writes)),
        (f"durable writes, {WRITERS} tasks at once (group commit)", "/s",
         lambda e: measure(e, grouped_writes, args.writes)),
        (f"open and load {args.n} reflections", "s",
         lambda e: measure(e, open_and_load, items)),
        (f"compaction ({args.n} + 1,000 small updates)", "s",
         lambda e: measure(e, compaction, items)),
        ("refresh, nothing new", "µs", lambda e: measure(e, idle_refresh)),
    ]
    try:
        print(f"store engines: python {sys.version.split()[0]}, {os.cpu_count()} cores, "
              f"PostgreSQL from {server.bin_dir} (fsync on), median of {args.runs}")
        print(f"{'':<52} {'SQLite':>10} {'PostgreSQL':>11}")
        for name, unit, run in rows:
            lite, pg = run("sqlite"), run("postgres")
            print(f"{name:<52} {lite:>9.3f}{unit:<2} {pg:>9.3f}{unit:<2}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
