"""MirrorCore.watch names who a new reflection came from, whatever the timing.

A peer's update is applied at a chosen moment — during the store refresh that
each watch pass awaits — by wrapping ``DocStore.refresh``: deterministic, no
sleeps to let things settle.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import trio

from crdt import UpdateSource, open_store
from crdt.journal import Journal
from node.core import Arrival, MirrorCore, open_core
from node.home import Home


async def first_arrivals(core: MirrorCore) -> list[Arrival]:
    """Run the watcher until it reports an arrival; what it reported."""
    arrivals: list[Arrival] = []
    seen = trio.Event()

    def on_arrival(arrival: Arrival) -> None:
        arrivals.append(arrival)
        seen.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: core.watch(on_arrival, interval_s=0.01))
        with trio.fail_after(10):
            await seen.wait()
        nursery.cancel_scope.cancel()
    return arrivals


class PeerOrigin:
    """Stands for a sync session's origin."""


async def test_a_peer_reflection_applied_during_the_refresh_is_the_peers(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    async with open_core(home) as core:
        await core.reflect("Written here first.")
        (shard,) = await core.journal.shards()
        # The phone writes in another month: a shard this device does not have yet
        # (the case where the arrival was once put down to "this device").
        async with open_store(tmp_path / "peer.db") as peer_store:
            written = await Journal(peer_store).add(
                "Written on the phone.", created_at=datetime(2025, 1, 5, 9, tzinfo=UTC))
            (peer_shard,) = await Journal(peer_store).shards()
            delta = peer_shard.doc.get_update()
        assert peer_shard.doc_id != shard.doc_id and written.text == "Written on the phone."
        origin = PeerOrigin()
        core.peer_names[UpdateSource.of(origin)] = "phone"
        real_refresh = core.store.refresh
        armed = True

        async def refresh_then_peer_update():  # type: ignore[no-untyped-def]
            nonlocal armed
            result = await real_refresh()
            if armed:  # a session applies the peer's update while the pass waits
                armed = False
                stored = await core.store.open_doc(peer_shard.doc_id, kind=peer_shard.kind,
                                                   sync_class=peer_shard.sync_class)
                with stored.doc.transaction(origin=origin):
                    stored.doc.apply_update(delta)
            return result

        core.store.refresh = refresh_then_peer_update  # type: ignore[method-assign]
        arrivals = await first_arrivals(core)
        assert [(a.source, [r.text for r in a.reflections]) for a in arrivals] == [
            ("phone", ["Written on the phone."])]


async def test_another_process_reflection_applied_by_another_tasks_refresh_arrives(
    tmp_path: Path,
) -> None:
    # The watcher used to learn of another process's change only from the result
    # of its own refresh; a refresh by any other task of the process (a sync
    # service, an open, a compaction) kept it, and the arrival was never shown.
    home = Home(tmp_path / "home")
    async with open_core(home) as core:
        first = await core.reflect("Written here first.")
        real_refresh = core.store.refresh
        armed = True

        async def another_task_refreshes_first():  # type: ignore[no-untyped-def]
            nonlocal armed
            if armed:
                armed = False
                async with open_store(home.db_path) as other_process:
                    await Journal(other_process).add(
                        "Written by another process.", created_at=first.created_at)
                await real_refresh()  # another task's refresh applies it
            return await real_refresh()

        core.store.refresh = another_task_refreshes_first  # type: ignore[method-assign]
        arrivals = await first_arrivals(core)
        assert [[r.text for r in a.reflections] for a in arrivals] == [
            ["Written by another process."]]
