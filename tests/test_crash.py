"""SIGKILL a writer at seeded random points: nothing acknowledged is lost (TESTPLAN T2)."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from crdt import open_store
from crdt.journal import Journal
from tests.helpers import REPO


def run_and_kill(db: Path, kill_after: int, rng: random.Random) -> set[str]:
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


async def check_round(db: Path, acked: set[str]) -> int:
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    async with open_store(db) as store:
        persisted = {r.id for r in await Journal(store).all()}
    missing = acked - persisted
    assert not missing, f"{len(missing)} acknowledged reflections lost"
    return len(persisted)


async def crash_rounds(tmp_path: Path, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    db = tmp_path / "mirror.db"
    all_acked: set[str] = set()
    for _ in range(rounds):
        all_acked |= run_and_kill(db, rng.randrange(1, 60), rng)
        total = await check_round(db, all_acked)
        assert total >= len(all_acked)
    conn = sqlite3.connect(db)
    try:
        states = dict(
            conn.execute("SELECT state, COUNT(*) FROM client_ids GROUP BY state").fetchall()
        )
    finally:
        conn.close()
    # every killed writer left its id retired, never to be reused
    assert states.get("retired", 0) >= rounds - 1
    assert states.get("in_use", 0) <= 1


async def test_sigkill_loses_nothing_acknowledged(tmp_path: Path) -> None:
    await crash_rounds(tmp_path, rounds=8, seed=20261124)


@pytest.mark.slow
async def test_sigkill_many_rounds(tmp_path: Path) -> None:
    await crash_rounds(tmp_path, rounds=60, seed=1)
