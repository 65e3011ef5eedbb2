"""Commons server benchmark: posts accepted per second, thread page latency, concurrent readers.

    .venv/bin/python bench/commons.py [--posts 2000] [--page-posts 10000] [--readers 200]
    .venv/bin/python bench/commons.py --scale-out   # 1-3 instances on one PostgreSQL behind
                                                    # HAProxy, SQLite as the baseline: see
                                                    # bench/commons_scaleout.py

1. A node holding ``--posts`` new posts (20 author keys) syncs them in one protocol
   session over WebSocket on loopback: each is signed, verified by the server,
   applied and committed (group commit). Reported: posts accepted per second.
2. The server is filled to ``--page-posts`` posts (through the hub, signed and
   verified as over the wire), each tenth with a comment; then thread pages and the
   index are fetched one at a time: p50 and p95 latency.
3. ``--readers`` clients fetch the index and a thread page at the same time (one
   connection each); every answer must be 200.

Targets on this machine: >= 500 posts/s; thread page p50 <= 30 ms; 200 readers, no errors.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import trio
from pycrdt import Doc

from bench.commons_scaleout import add_arguments as add_scale_out_arguments
from bench.commons_scaleout import run_scale_out
from commons_server.app import CommonsApp
from commons_server.limits import CommonsLimits
from commons_server.server import open_hub, serve_commons
from crdt import open_store
from crdt.commons import AuthorKey, encode_bundle, make_doc_id, write_item
from node.commons.home import AuthorKeys, CommonsServer, create_item
from node.commons.sync import sync_commons

BIG = CommonsLimits(author_updates_per_minute=10**9, address_updates_per_minute=10**9,
                    address_requests_per_minute=10**9, max_sessions_per_address=10**6)


async def bench_posts(tmp: Path, url: str, server_key: bytes, n: int) -> float:
    home = tmp / "node"
    home.mkdir()
    keys = AuthorKeys(home)
    authors = [keys.create() for _ in range(20)]
    async with open_store(home / "mirror.db") as store:
        for i in range(n):
            await create_item(store, authors[i % len(authors)], "post",
                              {"title": f"post {i}", "body": "x" * 200})
        start = time.perf_counter()
        report = await sync_commons(store, CommonsServer(url, server_key), keys, set())
        elapsed = time.perf_counter() - start
    assert len(report.sent) == n, len(report.sent)
    return n / elapsed


async def fill(hub: object, total: int) -> list[str]:
    from commons_server.hub import Hub

    assert isinstance(hub, Hub)
    authors = [AuthorKey(os.urandom(32)) for _ in range(50)]
    threads: list[str] = []
    missing = total - len(hub.docs)

    async def one(i: int) -> None:
        author = authors[i % len(authors)]
        doc_id = make_doc_id("post", author.public, os.urandom(8))
        doc: Doc[object] = Doc()
        write_item(doc, "post", {"title": f"thread {i}", "body": "words " * 60,
                                 "created_at": "2026-03-01T12:00:00Z"})
        envelope = author.envelope(doc_id, doc.get_update(), hub.server_key)
        await hub.accept(doc_id, encode_bundle([envelope]), "bench")
        threads.append(doc_id)
        if i % 10 == 0:
            cid = make_doc_id("comment", author.public, os.urandom(8))
            c: Doc[object] = Doc()
            write_item(c, "comment", {"body": "a comment", "thread": doc_id,
                                      "created_at": "2026-03-01T12:00:00Z"})
            envelope = author.envelope(cid, c.get_update(), hub.server_key)
            await hub.accept(cid, encode_bundle([envelope]), "bench")

    batch = 200
    for start in range(0, missing, batch):
        async with trio.open_nursery() as nursery:
            for i in range(start, min(missing, start + batch)):
                nursery.start_soon(one, i)
    return threads


async def bench_pages(url: str, threads: list[str], rounds: int) -> tuple[float, float, float]:
    times = []
    index_times = []
    async with httpx.AsyncClient() as client:
        for i in range(rounds):
            doc_id = threads[(i * 7919) % len(threads)]
            start = time.perf_counter()
            response = await client.get(url + "/" + doc_id.removeprefix("commons/"))
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.status_code
            start = time.perf_counter()
            response = await client.get(url + f"/?page={1 + i % 20}")
            index_times.append(time.perf_counter() - start)
            assert response.status_code == 200
    times.sort()
    return (statistics.median(times) * 1000, times[int(len(times) * 0.95)] * 1000,
            statistics.median(index_times) * 1000)


async def bench_readers(url: str, threads: list[str], readers: int) -> tuple[int, int, float]:
    ok = errors = 0

    async def reader(i: int) -> None:
        nonlocal ok, errors
        try:
            async with httpx.AsyncClient(timeout=60) as client:
                for path in ("/", "/" + threads[i % len(threads)].removeprefix("commons/")):
                    response = await client.get(url + path)
                    if response.status_code == 200:
                        ok += 1
                    else:
                        errors += 1
        except httpx.HTTPError:
            errors += 1

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(readers):
            nursery.start_soon(reader, i)
    return ok, errors, time.perf_counter() - start


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async with open_hub(tmp / "server", limits=BIG) as hub, trio.open_nursery() as nursery:
            url = await nursery.start(serve_commons, CommonsApp(hub), "127.0.0.1", 0)
            rate = await bench_posts(tmp, url, hub.server_key, args.posts)
            print(f"posts accepted over the protocol: {args.posts} in one session, "
                  f"{rate:.0f} posts/s (target >= 500)")
            start = time.perf_counter()
            threads = await fill(hub, args.page_posts)
            print(f"filled to {len(hub.docs)} documents in {time.perf_counter() - start:.1f} s "
                  f"(hub path: {len(threads) / (time.perf_counter() - start):.0f} docs/s)")
            p50, p95, index_p50 = await bench_pages(url, threads, args.rounds)
            print(f"thread page with {args.page_posts} posts: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
                  f"(target p50 <= 30 ms); index page p50 {index_p50:.1f} ms")
            ok, errors, elapsed = await bench_readers(url, threads, args.readers)
            print(f"{args.readers} concurrent readers: {ok} pages served, {errors} errors, "
                  f"{elapsed:.2f} s (target: no errors)")
            nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--page-posts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--readers", type=int, default=200)
    add_scale_out_arguments(parser)
    arguments = parser.parse_args()
    if arguments.scale_out:
        trio.run(run_scale_out, arguments)
    else:
        trio.run(main, arguments)
