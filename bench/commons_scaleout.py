"""Scale-out figures for the Commons: ``bench/commons.py --scale-out`` (bounded; stops by itself).

    .venv/bin/python bench/commons.py --scale-out [--writers 6] [--writer-posts 60]
                                                  [--live-readers 24] [--fanout-posts 50]

Real ``mirror-commons`` processes behind Debian's HAProxy running the configuration
of docs/commons.md as written (bind and server lines on loopback), in four set-ups
in the same run: ``sqlite-1`` (one instance on its home's SQLite file: the
baseline), and ``pg-1``, ``pg-2``, ``pg-3`` (one, two, three instances over one
PostgreSQL, started by tests/postgres_helper.py with fsync on: ``durable=True``).

(a) accepted posts per second: --writers nodes, each holding --writer-posts new
    posts of its own author key, sync them at once through the proxy (one protocol
    session each): every post signed, verified by an instance, committed, and
    acknowledged to its writer; posts / seconds until the last writer is done.
(b) reader fan-out: --live-readers live sessions held open through the proxy (HAProxy
    spreads them over the instances); one writer sends --fanout-posts posts in one
    session; the time until every reader's store holds every post: deliveries
    (readers x posts) per second from the writer's start, and the time from the
    writer's acknowledgement to the last reader holding all of them.

Every part runs on this one machine (2 shared cores): the instances, PostgreSQL,
HAProxy and the clients share them, so more instances add contention here, not
capacity; the figures show what the shared database costs, not what three
machines would carry.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
from httpx_ws import aconnect_ws

from crdt import DocStore, open_store
from node.commons.home import AuthorKeys, CommonsServer, create_item
from node.commons.sync import MAX_WS_MESSAGE_BYTES, CommonsSync, WebSocketStream, sync_commons
from node.sync.session import SessionError, SyncSession
from protocol import INITIATOR
from tests.commons_processes import BEHIND_PROXY, commons_processes
from tests.haproxy_helper import HAProxy, Server, fenced_block, haproxy_unavailable, run_haproxy
from tests.postgres_helper import PostgresServer, postgres_unavailable
from tests.sync_helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
UNLIMITED = (*BEHIND_PROXY, "--author-updates-per-minute", "1000000000")
SETUPS = (("sqlite-1", False, 1), ("pg-1", True, 1), ("pg-2", True, 2), ("pg-3", True, 3))
FANOUT_DEADLINE_S = 120.0


@asynccontextmanager
async def platform(tmp: Path, database: str | None, n: int) -> AsyncIterator[HAProxy]:
    template = fenced_block(REPO / "docs" / "commons.md", "haproxy", "backend commons")
    names = [f"c{i + 1}" for i in range(n)]
    async with commons_processes(tmp / "server", database, names, *UNLIMITED) as fleet, \
            run_haproxy(template, [Server(c.name, c.address) for c in fleet]) as proxy:
        for c in fleet:
            await proxy.wait_for_state(c.name, "UP")
        yield proxy


async def server_of(url: str) -> CommonsServer:
    async with httpx.AsyncClient(timeout=10) as http:
        info = (await http.get(url + "/api/v1/info")).json()
    return CommonsServer(url, bytes.fromhex(info["server_key"]))


async def accepted_posts_per_s(tmp: Path, server: CommonsServer, writers: int,
                               each: int) -> float:
    ready: list[tuple[DocStore, AuthorKeys]] = []
    all_ready = trio.Event()
    done = trio.Event()
    go = trio.Event()
    finished = 0

    async def writer(i: int) -> None:
        nonlocal finished
        home = tmp / f"writer-{i}"
        await trio.Path(home).mkdir(parents=True)
        keys = AuthorKeys(home)
        author = keys.create()
        async with open_store(home / "mirror.db") as store:
            for n in range(each):
                await create_item(store, author, "post", {"title": f"w{i} {n}", "body": "x" * 200})
            ready.append((store, keys))
            if len(ready) == writers:
                all_ready.set()
            await go.wait()
            report = await sync_commons(store, server, keys, set())
            assert len(report.sent) == each, (len(report.sent), each)
        finished += 1
        if finished == writers:
            done.set()

    async with trio.open_nursery() as nursery:
        for i in range(writers):
            nursery.start_soon(writer, i)
        await all_ready.wait()
        start = time.perf_counter()
        go.set()
        await done.wait()
        elapsed = time.perf_counter() - start
    return writers * each / elapsed


async def live_reader(home: Path, server: CommonsServer, *,
                      task_status: trio.TaskStatus[DocStore] = trio.TASK_STATUS_IGNORED) -> None:
    await trio.Path(home).mkdir(parents=True)
    async with open_store(home / "mirror.db") as store, httpx.AsyncClient() as client:
        documents = CommonsSync(store, server, AuthorKeys(home), set())
        async with aconnect_ws(server.ws_url, client, max_message_size_bytes=MAX_WS_MESSAGE_BYTES,
                               keepalive_ping_interval_seconds=None) as ws:
            session = SyncSession(None, None, WebSocketStream(ws), INITIATOR, documents=documents)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_run_quietly, session)
                await session.caught_up.wait()
                task_status.started(store)


async def _run_quietly(session: SyncSession) -> None:
    try:
        await session.run()
    except SessionError:
        pass


async def fan_out(tmp: Path, server: CommonsServer, readers: int,
                  posts: int) -> tuple[float, float]:
    """(deliveries per second, seconds from the writer's acknowledgement to the last
    reader holding every post)."""
    home = tmp / "fanout-writer"
    await trio.Path(home).mkdir(parents=True)
    keys = AuthorKeys(home)
    author = keys.create()
    async with trio.open_nursery() as nursery, open_store(home / "mirror.db") as store:
        stores: list[DocStore] = [
            await nursery.start(live_reader, tmp / f"reader-{i}", server) for i in range(readers)]
        doc_ids = [(await create_item(store, author, "post", {"title": f"fan {n}", "body": "y"}
                                      )).doc_id for n in range(posts)]
        start = time.perf_counter()
        report = await sync_commons(store, server, keys, set())
        assert set(doc_ids) <= set(report.sent)
        acknowledged = time.perf_counter()
        await wait_for(lambda: all(s.info(d) is not None for s in stores for d in doc_ids),
                       FANOUT_DEADLINE_S)
        done = time.perf_counter()
        nursery.cancel_scope.cancel()
    return readers * posts / (done - start), done - acknowledged


async def one_setup(tmp: Path, name: str, database: str | None, n: int,
                    args: Any) -> dict[str, float]:
    async with platform(tmp, database, n) as proxy:
        server = await server_of(proxy.url)
        rate = await accepted_posts_per_s(tmp, server, args.writers, args.writer_posts)
        deliveries, lag = await fan_out(tmp, server, args.live_readers, args.fanout_posts)
    print(f"{name:9} accepted {rate:7.0f} posts/s | fan-out {deliveries:7.0f} deliveries/s "
          f"to {args.live_readers} readers; the last reader had them all "
          f"{lag * 1000:5.0f} ms after the writer's acknowledgement", flush=True)
    return {"posts_per_s": rate, "deliveries_per_s": deliveries, "lag_s": lag}


async def run_scale_out(args: Any) -> dict[str, dict[str, float]]:
    for reason in (haproxy_unavailable(), postgres_unavailable()):
        if reason:
            raise SystemExit(f"bench/commons.py --scale-out: {reason}")
    print(f"{args.writers} writers x {args.writer_posts} posts; {args.live_readers} live readers x "
          f"{args.fanout_posts} posts; HAProxy as docs/commons.md says", flush=True)
    server = await trio.to_thread.run_sync(lambda: PostgresServer.start(durable=True))
    results = {}
    try:
        for name, on_postgres, n in SETUPS:
            with tempfile.TemporaryDirectory() as d:
                database = (await trio.to_thread.run_sync(server.create_database)
                            if on_postgres else None)
                results[name] = await one_setup(Path(d), name, database, n, args)
    finally:
        await trio.to_thread.run_sync(server.stop)
    return results


def add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("--scale-out")
    group.add_argument("--scale-out", action="store_true",
                       help="several instances on one PostgreSQL behind HAProxy (see "
                            "bench/commons_scaleout.py)")
    group.add_argument("--writers", type=int, default=6)
    group.add_argument("--writer-posts", type=int, default=60)
    group.add_argument("--live-readers", type=int, default=24)
    group.add_argument("--fanout-posts", type=int, default=50)
