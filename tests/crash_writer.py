"""A writer process for the crash test: prints ``ACK <id>`` after each COMMIT (SQLite file
or PostgreSQL URL)."""

from __future__ import annotations

import sys
from pathlib import Path

import trio

from crdt import open_store
from crdt.journal import Journal


async def main(db: Path | str, limit: int) -> None:
    async with open_store(db, compact_after_updates=200) as store:
        journal = Journal(store)
        for i in range(limit):
            r = await journal.add(f"crash test entry {i} " + "x" * (i % 300), durable=True)
            sys.stdout.write(f"ACK {r.id}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    where = sys.argv[1]  # an SQLite file or a postgresql:// URL
    trio.run(main, where if "://" in where else Path(where), int(sys.argv[2]))
