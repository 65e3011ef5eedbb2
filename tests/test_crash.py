"""SIGKILL a writer at seeded random points: nothing acknowledged is lost (TESTPLAN T2)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crdt import open_store
from crdt.journal import Journal
from tests.helpers import REPO
from tests.store_targets import StoreTarget


def run_and_kill(db: Path | str, kill_after: int, rng: random.Random) -> set[str]:
    """Start a writer, SIGKILL it after *kill_after* acks (+ a random partial line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_writer", str(db), "100000"],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    acked: set[str] = set()
    try:
        while len(acked) < kill_after:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(b"ACK "):
                acked.add(line.split()[1].decode())
        # let it run a little further without reading, so the kill lands mid-write
        spin = rng.randrange(0, 4)
        for _ in range(spin):
            line = proc.stdout.readline()
            if line.startswith(b"ACK "):
                acked.add(line.split()[1].decode())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return acked


async def check_round(target: StoreTarget, acked: set[str]) -> int:
    target.check_integrity()
    async with open_store(target.location) as store:
        persisted = {r.id for r in await Journal(store).all()}
    missing = acked - persisted
    assert not missing, f"{len(missing)} acknowledged reflections lost"
    return len(persisted)


async def crash_rounds(target: StoreTarget, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    all_acked: set[str] = set()
    for _ in range(rounds):
        all_acked |= run_and_kill(target.location, rng.randrange(1, 60), rng)
        total = await check_round(target, all_acked)
        assert total >= len(all_acked)
    states = dict(target.rows("SELECT state, COUNT(*) FROM client_ids GROUP BY state"))
    # every killed writer left its id retired, never to be reused
    assert states.get("retired", 0) >= rounds - 1
    assert states.get("in_use", 0) <= 1


async def test_sigkill_loses_nothing_acknowledged(store_target: StoreTarget) -> None:
    await crash_rounds(store_target, rounds=8, seed=20261124)


@pytest.mark.slow
async def test_sigkill_many_rounds(store_target: StoreTarget) -> None:
    await crash_rounds(store_target, rounds=60, seed=1)
