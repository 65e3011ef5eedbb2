"""One refresh loop per process (node.refresh): every subscriber hears every refresh,
and what another process creates while the REPL runs reaches both the REPL and the
sync service, which pushes it live to the other device."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from pycrdt import Map

from crdt import RefreshResult, SyncClass, open_store
from node.core import open_core
from node.home import Home
from node.refresh import RefreshPublisher
from tests.helpers import start_mirror, stop_mirror
from tests.sync_helpers import wait_for
from tests.test_repl import running_repl
from tests.test_sync_e2e import LOOPBACK, has, mirror, pair

DEADLINE_S = 20


async def _create_elsewhere(db: Path, doc_id: str) -> None:
    """Another process's write: a new document, through a second store on the file."""
    async with open_store(db) as other:
        stored = await other.open_doc(doc_id, kind="note", sync_class=SyncClass.LOCAL)
        stored.doc.get("m", type=Map)["k"] = "v"
        await other.wait_durable()


async def test_every_subscriber_hears_every_refresh(tmp_path: Path) -> None:
    db = tmp_path / "mirror.db"
    async with open_store(db) as store:
        publisher = RefreshPublisher(store, interval_s=0.01)
        calls: list[str] = []
        with publisher.subscribe(lambda: calls.append("a")) as a, \
                publisher.subscribe(lambda: calls.append("b")) as b:
            await _create_elsewhere(db, "notes/one")
            result = await publisher.refresh_now()
            assert [i.doc_id for i in result.new_documents] == ["notes/one"]
            assert calls == ["a", "b"]  # before the refresh, each subscriber's note
            for sub in (a, b):
                with trio.fail_after(DEADLINE_S):
                    seen = await sub.wait()
                assert [i.doc_id for i in seen.new_documents] == ["notes/one"]
            # a subscriber busy meanwhile gets what every refresh since found, merged
            await _create_elsewhere(db, "notes/two")
            await publisher.refresh_now()
            await _create_elsewhere(db, "notes/three")
            await publisher.refresh_now()
            merged = await a.wait()
            assert {i.doc_id for i in merged.new_documents} == {"notes/two", "notes/three"}
            assert a.statistics() == b.statistics() == 3


async def test_one_loop_polls_and_another_takes_over(tmp_path: Path) -> None:
    db = tmp_path / "mirror.db"
    async with open_store(db) as store:
        publisher = RefreshPublisher(store, interval_s=0.01)
        refreshes = 0
        real = store.refresh

        async def counted() -> RefreshResult:
            nonlocal refreshes
            refreshes += 1
            return await real()

        store.refresh = counted  # type: ignore[method-assign]
        with publisher.subscribe() as sub, trio.fail_after(DEADLINE_S):
            async with trio.open_nursery() as nursery:
                first = trio.CancelScope()

                async def run_first() -> None:
                    with first:
                        await publisher.run()

                nursery.start_soon(run_first)
                nursery.start_soon(publisher.run)  # waits: one loop at a time
                for _ in range(5):
                    await sub.wait()
                assert refreshes == sub.statistics()  # one loop: one refresh a tick
                first.cancel()  # the REPL closes; the other runner takes over
                before = sub.statistics()
                await _create_elsewhere(db, "notes/later")
                while True:
                    seen = await sub.wait()
                    if seen.new_documents:
                        break
                assert sub.statistics() > before
                nursery.cancel_scope.cancel()


async def test_a_document_created_while_the_repl_runs_reaches_the_repl_and_the_peer(
    tmp_path: Path,
) -> None:
    """The REPL (sync on) and its sync service share one refresh loop: a reflection
    another process of this device writes into a new journal shard shows above the
    prompt and is pushed live to the other device."""
    laptop, phone = tmp_path / "laptop", tmp_path / "phone"
    await pair(phone, laptop)
    for home in (laptop, phone):
        status, _, err = await mirror(home, "share", "journal", "--class", "devices")
        assert status == 0, err
    serve = await start_mirror(phone, "serve", "--json", *LOOPBACK)
    try:
        config = json.loads((laptop / "config.json").read_text())
        config.update(sync_enabled=True, discovery=False, sync_listen="127.0.0.1:0",
                      sync_peers=[str(serve.json["address"])])
        (laptop / "config.json").write_text(json.dumps(config))
        async with open_core(Home(laptop)) as core, running_repl(core) as repl:
            before = {i.doc_id for i in core.store.documents()}
            # another process on the laptop: a month no shard exists for yet
            status, _, err = await mirror(laptop, "reflect", "--no-mirrorback",
                                          "--at", "2024-02-03", "an old page, typed in now")
            assert status == 0, err
            await repl.expect("1 reflection arrived from this device")
            await repl.expect("an old page, typed in now")
            new = {i.doc_id for i in core.store.documents()} - before
            assert any(d.startswith("journal/2024-02") for d in new), new
            await wait_for(lambda: has(phone, "an old page, typed in now"), deadline_s=30)
            repl.type("/quit\r")
            await repl.wait_done()
    finally:
        assert await stop_mirror(serve) == 0
