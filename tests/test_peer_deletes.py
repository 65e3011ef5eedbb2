"""A reflection deleted on another device is forgotten and scrubbed here too.

The other device is a second store holding a replica of the journal shard; its
delete reaches this node as a CRDT update under a session's origin, exactly as
a sync session applies it (node/sync/documents.py).
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from crdt import ScrubResult, open_store
from crdt.journal import Journal
from node.core import MirrorCore, open_core
from node.home import Home
from tests.sync_helpers import wait_for

GONE = "Quillfeather"
KEPT = "Oakhollow-5"


class PeerOrigin:
    """Stands for a sync session: any origin that is not this process's own."""


def _home_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


async def _people(core: MirrorCore) -> set[str]:
    return {key for key in (await core.understanding.graph()).nodes if key.startswith("person:")}


async def test_a_delete_from_another_device_is_forgotten_and_scrubbed(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    async with open_core(home) as core, trio.open_nursery() as nursery:
        await nursery.start(core.follow_peer_deletes)
        doomed = await core.reflect(f"My boss and {GONE} argued and I feel anxious.")
        await core.mirror(doomed)
        await core.reflect(f"My boss praised me, {KEPT}, and I feel anxious anyway.")
        await core.store.wait_durable()
        assert "person:quillfeather" in await _people(core)
        (shard,) = await core.journal.shards()

        # The other device: a replica of the shard, where the reflection is deleted.
        async with open_store(tmp_path / "peer.db") as peer_store:
            replica = await peer_store.open_doc(shard.doc_id, kind=shard.kind,
                                                sync_class=shard.sync_class)
            replica.doc.apply_update(shard.doc.get_update())
            await Journal(peer_store).delete(doomed.id)
            delta = replica.doc.get_update(shard.doc.get_state())

        assert GONE.encode() in _home_bytes(home.path)
        with shard.doc.transaction(origin=PeerOrigin()):
            shard.doc.apply_update(delta)

        async def forgotten() -> bool:
            return (GONE.encode() not in _home_bytes(home.path)
                    and "person:quillfeather" not in await _people(core))

        await wait_for(forgotten)
        assert [r.text for r in await core.journal.all()] == [
            f"My boss praised me, {KEPT}, and I feel anxious anyway."]
        assert KEPT.encode() in _home_bytes(home.path)
        assert "person:my boss" in await _people(core)
        nursery.cancel_scope.cancel()


async def test_own_writes_and_additions_from_peers_trigger_nothing(tmp_path: Path) -> None:
    # Only removals by another device count: a reflection a peer adds, and this
    # device's own deletes (which scrub by themselves), are not acted on again.
    home = Home(tmp_path / "home")
    calls: list[str] = []
    async with open_core(home) as core, trio.open_nursery() as nursery:
        real_scrub = core.store.scrub_deleted

        async def counting_scrub() -> ScrubResult:
            calls.append("scrub")
            return await real_scrub()

        core.store.scrub_deleted = counting_scrub  # type: ignore[method-assign]
        await nursery.start(core.follow_peer_deletes)
        first = await core.reflect("My boss praised me and I feel calm.")
        (shard,) = await core.journal.shards()
        async with open_store(tmp_path / "peer.db") as peer_store:
            replica = await peer_store.open_doc(shard.doc_id, kind=shard.kind,
                                                sync_class=shard.sync_class)
            replica.doc.apply_update(shard.doc.get_update())
            await Journal(peer_store).add("Written on the other device.",
                                          created_at=first.created_at)
            delta = replica.doc.get_update(shard.doc.get_state())
        with shard.doc.transaction(origin=PeerOrigin()):
            shard.doc.apply_update(delta)
        await core.delete(first.id)  # its own scrub: one call
        # Once every task waits, the follower has handled both changes (a scrub
        # it started would already be counted: the count comes first).
        await trio.testing.wait_all_tasks_blocked()
        assert calls == ["scrub"]
        assert [r.text for r in await core.journal.all()] == ["Written on the other device."]
        nursery.cancel_scope.cancel()
