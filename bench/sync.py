"""Benchmark of LAN sync between two node processes on loopback.

    .venv/bin/python bench/sync.py [--n 10000] [--latency 1000]

(a) first sync of N reflections from A to B: wall time from connect to caught
    up, bytes on the wire (both directions) against the raw update size;
(b) propagation latency of single reflections written on A one after another,
    from just before A's write to B having applied it (p50, p99);
(c) reconnect with nothing new, N reflections across >= 100 documents: bytes
    and time.

Each node is its own process (the real store, session and TCP); they share
the machine's clock, which is what makes (b) measurable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import trio.lowlevel

from bench.store import make_reflections, sample_text
from crdt import SyncClass, open_store
from crdt.journal import Journal, Reflection, shard_ids
from node.identity import load_keyring
from node.sync.group import Group
from node.sync.session import SessionError, SyncSession
from protocol import INITIATOR, RESPONDER

LATENCY_MONTH = datetime(2031, 1, 1, tzinfo=UTC)


class CountingStream(trio.abc.HalfCloseableStream):
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.sent = 0
        self.received = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sent += len(data)
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = bytes(await self.stream.receive_some(max_bytes))
        self.received += len(data)
        return data

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()


# --------------------------------------------------------------------------- setup


async def prepare(tmp: Path, n: int, months: int) -> tuple[Path, Path, int]:
    """Two paired homes; A holds n reflections over *months* monthly shards."""
    a, b = tmp / "a", tmp / "b"
    rings = []
    for home in (a, b):
        home.mkdir(parents=True)
        rings.append(load_keyring(home))
    rings[1].adopt_group(rings[0].epochs)
    raw = 0
    for home, ring, other in ((a, rings[0], rings[1]), (b, rings[1], rings[0])):
        async with open_store(home / "mirror.db") as store:
            group = await Group.open(store, ring)
            group.add_device(other.device_public, "peer")
            if home == a:
                items = make_reflections(n)
                start = datetime(2020, 1, 1, tzinfo=UTC)
                spread = [
                    Reflection(r.id, start + timedelta(days=31 * (i % months)), r.text, r.tags)
                    for i, r in enumerate(items)
                ]
                journal = Journal(store, share_class=SyncClass.DEVICES)
                await journal.add_many(spread)
                for shard in await journal.shards():
                    raw += len(shard.doc.get_update())
            await store.wait_durable()
    return a, b, raw


# --------------------------------------------------------------------------- node roles


async def role_a(home: Path, latency: int) -> None:
    """Listen; serve one session at a time; after catch-up write *latency* reflections."""
    async with open_store(home / "mirror.db") as store:
        group = await Group.open(store, load_keyring(home))
        for info in store.documents():
            await store.open_doc(info.doc_id, kind=info.kind, create=False)
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        print(json.dumps({"port": listeners[0].socket.getsockname()[1]}), flush=True)
        journal = Journal(store, share_class=SyncClass.DEVICES)

        async def handle(stream: trio.SocketStream) -> None:
            session = SyncSession(store, group, stream, RESPONDER)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_quietly, session)
                await session.caught_up.wait()
                sent: dict[str, float] = {}
                if latency and stream.socket.getsockname():
                    command = await trio.to_thread.run_sync(sys.stdin.readline)
                    if command.strip() == "write":
                        for i in range(latency):
                            text = f"latency probe {i} " + sample_text(random.Random(i), 80)
                            t0 = time.time()
                            r = await journal.add(text, created_at=LATENCY_MONTH, durable=False)
                            sent[r.id] = t0
                            await trio.sleep(0.003)
                        await store.wait_durable()
                        print(json.dumps({"sent": sent}), flush=True)

        await trio.serve_listeners(handle, listeners)


async def run_quietly(session: SyncSession) -> None:
    try:
        await session.run()
    except SessionError:
        pass


async def role_b(home: Path, port: int, latency: int) -> None:
    async with open_store(home / "mirror.db") as store:
        group = await Group.open(store, load_keyring(home))
        arrived: dict[str, float] = {}
        seen: set[str] = set()

        def on_update(session: SyncSession, stored: Any) -> None:
            if stored.doc_id == "journal/2031-01":
                now = time.time()
                for rid in shard_ids(stored.doc) - seen:
                    arrived[rid] = now
                    seen.add(rid)

        # a running node has its shared documents loaded (SyncService preloads them)
        for info in store.documents():
            await store.open_doc(info.doc_id, kind=info.kind, create=False)
        t0 = time.perf_counter()
        stream = CountingStream(await trio.open_tcp_stream("127.0.0.1", port))
        session = SyncSession(store, group, stream, INITIATOR, on_update=on_update)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_quietly, session)
            await session.caught_up.wait()
            # caught up = A answered our requests; wait for our own side too
            while session.pending():
                await trio.lowlevel.checkpoint()
            elapsed = time.perf_counter() - t0
            await store.wait_durable()
            count = len(await Journal(store).all())
            print(json.dumps({"caught_up_s": elapsed, "bytes_in": stream.received,
                              "bytes_out": stream.sent, "reflections": count}), flush=True)
            if latency:
                with trio.fail_after(120):
                    while True:
                        if len(arrived) >= latency:
                            break
                        await trio.sleep(0.05)
                print(json.dumps({"arrived": arrived}), flush=True)
            session.close_soon()
            nursery.cancel_scope.deadline = trio.current_time() + 2


# --------------------------------------------------------------------------- orchestration


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def line(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    text = proc.stdout.readline()
    if not text:
        raise RuntimeError("a node process ended early")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def report(name: str, value: float, target: float, unit: str) -> bool:
    ok = value <= target
    verdict = "ok" if ok else "MISS"
    print(f"{name:<52} {value:10.3f} {unit:<4} target <= {target:g} {unit}  {verdict}")
    return ok


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_pair(a: Path, b: Path, latency: int) -> tuple[dict[str, Any], dict[str, float]]:
    node_a = spawn("--role", "a", "--home", str(a), "--latency", str(latency))
    try:
        port = int(line(node_a)["port"])
        node_b = spawn("--role", "b", "--home", str(b), "--port", str(port),
                       "--latency", str(latency))
        try:
            first = line(node_b)
            latencies: dict[str, float] = {}
            if latency:
                assert node_a.stdin is not None
                node_a.stdin.write("write\n")
                node_a.stdin.flush()
                sent = line(node_a)["sent"]
                arrived = line(node_b)["arrived"]
                latencies = {k: arrived[k] - sent[k] for k in sent if k in arrived}
            node_b.wait(timeout=30)
        finally:
            node_b.kill()
    finally:
        node_a.kill()
        node_a.wait()
    return first, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--latency", type=int, default=1000)
    parser.add_argument("--role", choices=("a", "b"))
    parser.add_argument("--home")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.role == "a":
        trio.run(role_a, Path(args.home), args.latency)
        return 0
    if args.role == "b":
        trio.run(role_b, Path(args.home), args.port, args.latency)
        return 0

    print(f"sync benchmark: {args.n} reflections, two processes on loopback, "
          f"{os.cpu_count()} cores")
    results = []
    with tempfile.TemporaryDirectory(prefix="mirror-sync-bench-") as tmp:
        a, b, raw = trio.run(prepare, Path(tmp) / "first", args.n, 20)
        first, latencies = run_pair(a, b, args.latency)
        assert first["reflections"] == args.n, first
        wire = first["bytes_in"] + first["bytes_out"]
        results.append(report(f"(a) first sync of {args.n}, wall", first["caught_up_s"], 1.0, "s"))
        print(f"    wire {wire} B, raw updates {raw} B")
        results.append(report("(a) wire bytes / raw update bytes", wire / raw, 1.2, "x"))
        values = [v * 1000 for v in latencies.values()]
        if values:
            results.append(report(f"(b) propagation p50 ({len(values)} reflections)",
                                  statistics.median(values), 5, "ms"))
            results.append(report("(b) propagation p99", percentile(values, 0.99), 20, "ms"))
        a2, b2, _ = trio.run(prepare, Path(tmp) / "reconnect", args.n, 100)
        run_pair(a2, b2, 0)  # first sync
        again, _ = run_pair(a2, b2, 0)  # nothing new
        total = again["bytes_in"] + again["bytes_out"]
        results.append(report("(c) reconnect, nothing new, 100 docs: bytes", total / 1000, 4, "kB"))
        results.append(report("(c) reconnect, nothing new: time",
                              again["caught_up_s"] * 1000, 50, "ms"))
    print(f"{sum(results)}/{len(results)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

