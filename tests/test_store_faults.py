"""A store that fails on the k-th write, for each k, keeps the previous state (TESTPLAN T2)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crdt import StoreError, open_store
from crdt.journal import Journal
from tests.store_targets import StoreTarget

WHEN = datetime(2026, 6, 1, tzinfo=UTC)


class FailOn:
    """Raise a disk error at the k-th write step the storage thread takes."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.seen = 0

    def __call__(self, step: str) -> None:
        self.seen += 1
        if self.seen == self.k:
            raise sqlite3.OperationalError(f"injected failure at step {self.k} ({step})")


async def workload(store_path: Path | str, fault: FailOn | None, acknowledged: list[str]) -> None:
    """Write, edit, delete; *acknowledged* holds the state each durable step promised."""
    async with open_store(store_path, fault=fault) as store:
        journal = Journal(store)
        ids = []
        for i in range(4):
            r = await journal.add(f"entry {i}", created_at=WHEN + timedelta(minutes=i))
            ids.append(r.id)
            acknowledged[:] = [*acknowledged, f"entry {i}"]
        await journal.edit(ids[1], text="entry 1 edited")
        acknowledged[:] = ["entry 0", "entry 1 edited", "entry 2", "entry 3"]
        await journal.delete(ids[2])
        acknowledged[:] = ["entry 0", "entry 1 edited", "entry 3"]


async def read_texts(path: Path | str) -> list[str]:
    async with open_store(path) as store:
        return [r.text for r in await Journal(store).all()]


async def test_every_single_write_failure_keeps_acknowledged_state(
    store_target: StoreTarget,
) -> None:
    base = store_target
    async with open_store(base.location) as store:
        await Journal(store).add("older entry", created_at=WHEN - timedelta(days=40))
    counter = FailOn(10**9)
    full = base.clone("full")
    done: list[str] = []
    await workload(full.location, counter, done)
    total_steps = counter.seen
    assert total_steps >= 12, "each durable step is its own transaction"
    assert await read_texts(full.location) == ["older entry", *done]
    for k in range(1, total_steps + 1):
        copy = base.clone(f"k{k}")
        acknowledged: list[str] = []
        with pytest.raises(StoreError):
            await workload(copy.location, FailOn(k), acknowledged)
        # exactly what was acknowledged before the failure: nothing lost, nothing half-done
        assert await read_texts(copy.location) == ["older entry", *acknowledged], (
            f"failure at step {k}"
        )
        copy.check_integrity()
