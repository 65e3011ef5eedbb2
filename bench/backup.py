"""Benchmark of encrypted backup and restore of a home with N reflections.

    .venv/bin/python bench/backup.py [--n 10000] [--profile moderate] [--runs 3]

Builds a home with N reflections of about 500 characters (seeded), then times
``write_backup`` and ``restore_backup`` (into a fresh home) with the real
Argon2id profile, reports the key derivation separately, and checks that the
restored home holds the same reflections. Each figure is the median of --runs.
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

import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from crdt import open_store
from crdt.crypto_at_rest import ENV_KDF_PROFILE, derive_key, new_kdf_params
from crdt.journal import Journal, Reflection, new_reflection_id
from node.backup import BACKUP_PROFILE, restore_backup, write_backup
from node.home import Home

WORDS = (
    "work money sleep family morning tired hopeful anxious Sam mother sister boss "
    "deadline walk ocean quiet pressure control scarcity enough rest body breath "
    "friend call argument laugh write plan fear want need should could maybe"
).split()
PASSPHRASE = "a benchmark passphrase"


async def build(home: Home, n: int) -> None:
    home.ensure()
    rng = random.Random(1)
    start = datetime(2020, 1, 1, tzinfo=UTC)
    items = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(85))[:500]
        items.append(Reflection(new_reflection_id(), start + timedelta(hours=7 * i), text))
    async with open_store(home.db_path) as store:
        await Journal(store).add_many(items)
        await store.compact()


async def count(home: Home) -> int:
    async with open_store(home.db_path, create=False) as store:
        return await Journal(store).count()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--profile", default=BACKUP_PROFILE)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ[ENV_KDF_PROFILE] = args.profile
    with tempfile.TemporaryDirectory(prefix="mirror-bench-backup-") as tmp:
        root = Path(tmp)
        source = Home(root / "source")
        trio.run(build, source, args.n)
        store_bytes = source.db_path.stat().st_size
        params = new_kdf_params(args.profile)
        kdf = []
        for _ in range(args.runs):
            t = time.perf_counter()
            derive_key(PASSPHRASE, params)
            kdf.append(time.perf_counter() - t)
        backups, restores = [], []
        size = 0
        for run in range(args.runs):
            target = root / f"b{run}.mbk"
            t = time.perf_counter()
            write_backup(source, target, PASSPHRASE)
            backups.append(time.perf_counter() - t)
            size = target.stat().st_size
            dest = Home(root / f"restored{run}")
            t = time.perf_counter()
            restore_backup(target, dest, PASSPHRASE)
            restores.append(time.perf_counter() - t)
            assert trio.run(count, dest) == args.n
        print(f"reflections: {args.n}, store: {store_bytes / 1e6:.1f} MB, "
              f"backup file: {size / 1e6:.1f} MB, Argon2id profile: {args.profile}")
        print(f"key derivation (median): {statistics.median(kdf) * 1000:.0f} ms")
        print(f"backup  (median of {args.runs}, KDF included): "
              f"{statistics.median(backups) * 1000:.0f} ms")
        print(f"restore (median of {args.runs}, KDF included, verified): "
              f"{statistics.median(restores) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
