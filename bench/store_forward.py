"""Benchmark of the blind store: restore a new device from it, and what it keeps.

    .venv/bin/python bench/store_forward.py [--n 10000] [--runs 3]

Device A holds N reflections (~500 characters, over 20 monthly shards, shared
with its devices). It pushes them to a blind store (served by hypercorn on
127.0.0.1 port 0 in this process) and compacts. Then, per run, a fresh device C
of the same group restores everything from the store:

(a) restore time: ``BlindSync.sync_once`` on C — pull, verify every signature,
    decrypt, apply, commit to C's store, push C's own membership change;
(b) the same through the real command, ``mirror store sync``, as a process
    (Python start-up and imports included);
(c) store bytes after compaction (envelope bytes the store keeps, and its
    SQLite files after a checkpoint) against the plaintext update bytes
    (``doc.get_update()`` of every shared document).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.store import make_reflections
from commons_server.blind import build_blind_store_app, serve_blind_store
from crdt import SyncClass, open_store
from crdt.journal import Journal
from node.identity import load_keyring
from node.sync.blind import BlindSync, LogState, save_state
from node.sync.catalogue import offerable
from node.sync.group import Group


def child_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRROR_")}
    return {**env, "MIRROR_HOME": str(home), "PYTHONPATH": str(REPO)}


async def prepare_source(
    home: Path, n: int, url: str, http: httpx.AsyncClient, joiners: list[bytes]
) -> dict[str, Any]:
    await trio.to_thread.run_sync(functools.partial(home.mkdir, parents=True))
    ring = load_keyring(home)
    async with open_store(home / "mirror.db") as store:
        group = await Group.open(store, ring)
        for i, key in enumerate(joiners):  # what pairing each new device leaves behind
            group.add_device(key, f"new device {i}")
        journal = Journal(store, share_class=SyncClass.DEVICES)
        await journal.add_many(make_reflections(n))
        plaintext = 0
        for info in offerable(store, [SyncClass.DEVICES]):
            stored = store.loaded(info.doc_id) or await store.open_doc(
                info.doc_id, kind=info.kind, create=False)
            plaintext += len(stored.doc.get_update())
        save_state(home, url, LogState(ring.epoch))
        sync = BlindSync(store, group, url, home, http)
        t0 = time.perf_counter()
        await sync.sync_once()
        push_s = time.perf_counter() - t0
        before = await sync._client(sync.epoch).usage()
        t0 = time.perf_counter()
        assert await sync.compact()
        compact_s = time.perf_counter() - t0
        after = await sync._client(sync.epoch).usage()
        return {"ring": ring, "plaintext": plaintext, "push_s": push_s, "compact_s": compact_s,
                "log_bytes_before": before["bytes"], "envelopes_before": before["envelopes"],
                "store_bytes": after["bytes"], "shards": len(offerable(store, [SyncClass.DEVICES]))}


def new_keyring(home: Path) -> bytes:
    home.mkdir(parents=True)
    return load_keyring(home).device_public


def new_device(home: Path, source: Any) -> None:
    """A device paired into A's group (what pairing leaves behind)."""
    ring = load_keyring(home)
    ring.adopt_group(source.epochs)

    async def add_member() -> None:
        async with open_store(home / "mirror.db") as store:
            group = await Group.open(store, ring)
            group.add_device(source.device_public, "source")

    trio.run(add_member)


async def restore_in_process(home: Path, url: str, http: httpx.AsyncClient, n: int) -> float:
    ring = load_keyring(home)
    async with open_store(home / "mirror.db") as store:
        group = await Group.open(store, ring)
        save_state(home, url, LogState(ring.epoch))
        sync = BlindSync(store, group, url, home, http)
        t0 = time.perf_counter()
        report = await sync.sync_once()
        await store.wait_durable()
        elapsed = time.perf_counter() - t0
        assert report.rejected == 0
        count = await Journal(store).count()
        assert count == n, count
    return elapsed


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mirror-bench-store-"))
    server_home = tmp / "server"
    app = build_blind_store_app(server_home)
    results: dict[str, Any] = {"n": args.n}
    async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
        url = await nursery.start(serve_blind_store, app, "127.0.0.1", 0)
        homes = [tmp / f"{kind}{run}" for run in range(args.runs) for kind in "cd"]
        joiners = [new_keyring(home) for home in homes]
        source = await prepare_source(tmp / "a", args.n, url, http, joiners)
        ring = source.pop("ring")
        results.update(source)
        in_process, command = [], []
        for run in range(args.runs):
            home = tmp / f"c{run}"
            await trio.to_thread.run_sync(new_device, home, ring)
            in_process.append(await restore_in_process(home, url, http, args.n))
            home = tmp / f"d{run}"
            await trio.to_thread.run_sync(new_device, home, ring)
            await trio.to_thread.run_sync(functools.partial(
                subprocess.run, [sys.executable, "-m", "node.cli", "store", "add", url],
                env=child_env(home), check=True, capture_output=True))
            t0 = time.perf_counter()
            await trio.to_thread.run_sync(functools.partial(
                subprocess.run, [sys.executable, "-m", "node.cli", "store", "sync"],
                env=child_env(home), check=True, capture_output=True))
            command.append(time.perf_counter() - t0)
        nursery.cancel_scope.cancel()
    app.close()
    db = sqlite3.connect(server_home / "blind-store.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.close()
    file_bytes = sum(p.stat().st_size for p in server_home.glob("blind-store.db*"))
    results.update(
        restore_in_process_s=statistics.median(in_process),
        restore_command_s=statistics.median(command),
        store_file_bytes=file_bytes,
        ratio_envelopes=results["store_bytes"] / results["plaintext"],
        ratio_file=file_bytes / results["plaintext"],
    )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    trio.run(main, parser.parse_args())
