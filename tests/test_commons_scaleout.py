"""Three ``mirror-commons`` processes over one PostgreSQL, behind Debian's HAProxy
configured exactly as docs/commons.md says (issue 19, part 2).

What must hold: a post accepted through the proxy is read through every
instance; a withdrawal through the proxy holds on every instance; a live
session on each instance receives a post accepted by another; and when one
instance is killed mid-load, every post a client was told was accepted is
still served by the others, and the clients carry on through the proxy.

Skipped with the reason where PostgreSQL or HAProxy is missing (``.ci/run``
installs both).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from httpx_ws import aconnect_ws

from crdt import DocStore, open_store
from node.commons.home import AuthorKeys, CommonsServer
from node.commons.sync import MAX_WS_MESSAGE_BYTES, CommonsSync, WebSocketStream
from node.sync.session import SessionError, SyncSession
from protocol import INITIATOR
from tests.commons_helpers import mirror
from tests.commons_processes import BEHIND_PROXY, CommonsProcess, commons_processes
from tests.haproxy_helper import (
    HAProxy,
    Server,
    check_config,
    fenced_block,
    haproxy_unavailable,
    loopback_config,
    run_haproxy,
)
from tests.helpers import REPO
from tests.sync_helpers import wait_for

pytestmark = pytest.mark.postgres

INSTANCES = ("c1", "c2", "c3")
FOLLOW_DEADLINE_S = 20.0
POSTERS = 3
POSTS_EACH = 5
KILL_AFTER_ACKNOWLEDGED = 4
RETRIES = 10


def needs_haproxy() -> None:
    reason = haproxy_unavailable()
    if reason:
        pytest.skip(reason)


def documented_config() -> str:
    return fenced_block(REPO / "docs" / "commons.md", "haproxy", "backend commons")


def thread_path(doc_id: str) -> str:
    _, kind, author, item = doc_id.split("/")
    return f"/api/v1/threads/{kind}/{author}/{item}"


@asynccontextmanager
async def platform(tmp_path: Path, dsn: str) -> AsyncIterator[tuple[list[CommonsProcess],
                                                                     HAProxy]]:
    async with commons_processes(tmp_path / "server", dsn, INSTANCES, *BEHIND_PROXY) as fleet, \
            run_haproxy(documented_config(),
                        [Server(c.name, c.address) for c in fleet]) as proxy:
        for c in fleet:
            await proxy.wait_for_state(c.name, "UP")
        yield fleet, proxy


async def post(home: Path, title: str) -> str:
    """Post through the proxy until acknowledged (a failed post waits on the device
    and goes with the next successful read); its document id."""
    status, out = await mirror(home, "commons", "post", "--title", title, "--body", "b",
                               "--yes")
    for _ in range(RETRIES):
        if status == 0:
            break
        status, out = await mirror(home, "commons", "read")
    assert status == 0, out
    status, out = await mirror(home, "published", "--json")
    entries = [e for e in json.loads(out) if title in str(e.get("summary", e))]
    return str(entries[-1]["doc_id"])


async def served_by(instance: CommonsProcess, doc_id: str) -> bool:
    status, _ = await instance.get_json(thread_path(doc_id))
    return status == 200


async def until_all(fleet: list[CommonsProcess], doc_id: str, present: bool) -> None:
    async def check() -> bool:
        return all([await served_by(c, doc_id) == present for c in fleet if not c.failed])

    await wait_for(check, FOLLOW_DEADLINE_S)


# --------------------------------------------------------------------------- the proxy itself


def test_the_documented_haproxy_config_is_run_as_written() -> None:
    needs_haproxy()
    template = documented_config()
    loopback = [Server("c1", "127.0.0.1:1"), Server("c2", "127.0.0.1:2")]
    rendered = loopback_config(template, loopback, listen_fd=3,
                               stats_socket=Path("/tmp/admin.sock"))
    assert "server c1 127.0.0.1:1 check" in rendered
    output = check_config(template, loopback)
    assert "[WARNING]" not in output and "[ALERT]" not in output, output


# --------------------------------------------------------------------------- three instances


async def test_posts_withdrawals_and_live_sessions_hold_on_every_instance(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    needs_haproxy()
    async with platform(tmp_path, postgres_dsn) as (fleet, proxy):
        assert len({c.server_key for c in fleet}) == 1  # one Commons, one server key
        alice = tmp_path / "alice"
        status, out = await mirror(alice, "commons", "add", proxy.url)
        assert status == 0, out
        async with trio.open_nursery() as nursery:
            readers = [await nursery.start(live_reader, tmp_path / f"reader-{c.name}", c)
                       for c in fleet]
            doc_id = await post(alice, "Hello, several instances")
            await until_all(fleet, doc_id, present=True)
            for reader in readers:  # a live session on every instance got it pushed
                await wait_for(lambda r=reader: r.info(doc_id) is not None, FOLLOW_DEADLINE_S)
            nursery.cancel_scope.cancel()
        status, out = await mirror(alice, "unpublish", doc_id, "--yes")
        assert status == 0, out
        await until_all(fleet, doc_id, present=False)
        for c in fleet:
            status, answer = await c.get_json("/api/v1/withdrawn")
            assert status == 200 and isinstance(answer, dict)
            assert doc_id in answer["withdrawn"]


async def live_reader(home: Path, instance: CommonsProcess, *,
                      task_status: trio.TaskStatus[DocStore] = trio.TASK_STATUS_IGNORED
                      ) -> None:
    """A node's Commons session held open on *instance* itself (not through the proxy)."""
    await trio.Path(home).mkdir(parents=True)
    server = CommonsServer(instance.url, bytes.fromhex(instance.server_key))
    async with open_store(home / "mirror.db") as store, httpx.AsyncClient() as client:
        documents = CommonsSync(store, server, AuthorKeys(home), set())
        async with aconnect_ws(server.ws_url, client,
                               max_message_size_bytes=MAX_WS_MESSAGE_BYTES,
                               keepalive_ping_interval_seconds=None) as ws:
            session = SyncSession(None, None, WebSocketStream(ws), INITIATOR,
                                  documents=documents)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_run_quietly, session)
                await session.caught_up.wait()
                task_status.started(store)


async def _run_quietly(session: SyncSession) -> None:
    try:
        await session.run()
    except SessionError:
        pass


async def test_an_instance_killed_mid_load_loses_nothing_acknowledged(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    needs_haproxy()
    async with platform(tmp_path, postgres_dsn) as (fleet, proxy):
        acknowledged: list[str] = []
        killed = trio.Event()

        async def poster(i: int) -> None:
            home = tmp_path / f"poster-{i}"
            status, out = await mirror(home, "commons", "add", proxy.url)
            assert status == 0, out
            for n in range(POSTS_EACH):
                acknowledged.append(await post(home, f"load {i}.{n}"))

        async def killer() -> None:
            await wait_for(lambda: len(acknowledged) >= KILL_AFTER_ACKNOWLEDGED, 60)
            await fleet[0].kill()
            killed.set()

        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(killer)
                for i in range(POSTERS):
                    nursery.start_soon(poster, i)
        assert killed.is_set() and len(acknowledged) == POSTERS * POSTS_EACH
        survivors = [c for c in fleet if not c.failed]
        for doc_id in acknowledged:
            await until_all(survivors, doc_id, present=True)
        await proxy.wait_for_state("c1", "DOWN")
        status, threads = await survivors[0].get_json("/api/v1/threads")
        assert status == 200 and isinstance(threads, dict)
        listed = {t["doc_id"] for t in threads["threads"]}
        assert set(acknowledged) <= listed
