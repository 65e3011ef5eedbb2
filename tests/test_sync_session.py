"""Sync sessions between two devices over in-memory streams."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from crdt import SyncClass
from crdt.journal import shard_ids
from node.sync.session import SyncSession
from protocol import INITIATOR, RESPONDER
from tests.sync_helpers import (
    connected,
    open_devices,
    run_recording,
    run_to_the_end,
    session_pair,
    wait_for,
)


async def texts(device: object) -> set[str]:
    journal = device.journal  # type: ignore[attr-defined]
    await device.store.refresh()  # type: ignore[attr-defined]
    return {r.text for r in await journal.all()}


async def test_catch_up_then_live_updates(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["laptop", "phone"]) as (a, b):
        await a.journal.add("shared before the session")
        await a.journal.add("PRIVATE-CANARY stays home", private=True)
        await b.journal.add("written on the phone")
        async with connected(a, b) as (sa, sb):
            with trio.fail_after(10):
                await sa.caught_up.wait()
                await sb.caught_up.wait()
            assert "shared before the session" in await texts(b)
            assert "written on the phone" in await texts(a)
            assert "PRIVATE-CANARY stays home" not in await texts(b)
            await a.journal.add("a live one")

            async def b_has_it() -> bool:
                return "a live one" in await texts(b)

            await wait_for(b_has_it)
            assert sa.stats.updates_in >= 1 and sb.stats.updates_in >= 1
        # B persisted what arrived: a fresh look at its store has it
        shards = await b.journal.shards()
        assert any(shard_ids(s.doc) for s in shards)


async def test_updates_are_not_echoed_back(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b), connected(a, b) as (sa, sb):
        with trio.fail_after(10):
            await sa.caught_up.wait()
            await sb.caught_up.wait()
        out_before = sb.stats.updates_out
        for i in range(5):
            await a.journal.add(f"entry {i}")

        async def b_has_all() -> bool:
            return len(await texts(b)) == 5

        await wait_for(b_has_all)
        assert sb.stats.updates_out == out_before, "B echoed A's updates back to A"


async def test_reconnect_with_nothing_new_is_one_small_round_trip(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        for i in range(20):
            await a.journal.add(f"entry {i}", created_at=None)
        async with connected(a, b) as (sa, sb):
            with trio.fail_after(10):
                await sa.caught_up.wait()
                await sb.caught_up.wait()
        async with connected(a, b) as (sa, sb):
            with trio.fail_after(10):
                await sa.caught_up.wait()
                await sb.caught_up.wait()
            assert sa.stats.updates_out == sa.stats.updates_in == 0
            assert sa.stats.bytes_out < 1024, sa.stats.bytes_out


async def test_local_documents_never_offered(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        a.journal.share_class = SyncClass.LOCAL
        await a.journal.add("LOCAL-CANARY in a local shard")
        await a.journal.add("PRIVATE-CANARY", private=True)
        sent: list[bytes] = []
        left, right = trio.testing.memory_stream_pair()
        original = left.send_stream.send_all_hook

        async def record() -> None:
            data = left.send_stream.get_data_nowait()
            sent.append(data)
            right.receive_stream.put_data(data)
            if original is not None:
                await original()

        left.send_stream.send_all_hook = record
        sa = SyncSession(a.store, a.group, left, INITIATOR)
        sb = SyncSession(b.store, b.group, right, RESPONDER)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_recording, sa, [])
            nursery.start_soon(run_recording, sb, [])
            with trio.fail_after(10):
                await sa.caught_up.wait()
                await sb.caught_up.wait()
            await a.journal.add("LOCAL-CANARY again, live")
            sa.close_soon()
            sb.close_soon()
        assert await texts(b) == set()
        assert b.store.info("journal-private/" + "x") is None
        assert not [i for i in b.store.documents() if i.kind == "journal"]
        wire = b"".join(sent)
        assert wire and b"CANARY" not in wire


async def test_removed_device_cannot_authenticate(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c):
        await a.journal.add("written after c left")
        record, epoch = a.group.remove_device(c.keyring.device_id)
        assert record.name == "c" and epoch == 1
        sc, sa = session_pair(c, a)
        failures = await run_to_the_end(sc, sa)
        # (the initiator finishes its half first; the responder refuses its FINISH)
        assert not sa.handshake_done.is_set()
        assert sc.stats.updates_in == 0 and failures

        # Even with the new epoch's secret (say, copied off another device), the
        # removed device's key is no longer known: refused.
        c.keyring.add_epoch(1, a.keyring.epochs[1])
        sc, sa = session_pair(c, a)
        failures = await run_to_the_end(sc, sa)
        assert not sa.handshake_done.is_set()
        assert sc.stats.updates_in == 0 and failures


async def test_a_device_that_missed_a_removal_learns_the_new_epoch(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c):
        a.group.remove_device(c.keyring.device_id)  # b was away: still at epoch 0
        assert a.keyring.epoch == 1 and b.keyring.epoch == 0
        # b dials a at its (old) epoch; a still answers there for a known device
        async with connected(b, a) as (sb, sa):
            with trio.fail_after(10):
                await sb.caught_up.wait()
                await sa.caught_up.wait()

            def b_knows_epoch_1() -> bool:
                return b.keyring.epoch == 1

            await wait_for(b_knows_epoch_1)
        assert b.keyring.epochs[1] == a.keyring.epochs[1]
        assert c.keyring.device_id not in {r.device_id for r in b.group.active()}
        # c, removed, gets nothing at either epoch
        sc, sa2 = session_pair(c, a)
        assert await run_to_the_end(sc, sa2)
        assert not sa2.handshake_done.is_set() and sc.stats.updates_in == 0


async def test_a_peer_cannot_give_a_document_a_non_map_root(tmp_path: Path) -> None:
    """pycrdt trap 11: reading a root of the wrong type can hang; such updates never land."""
    from pycrdt import Doc, Text

    from protocol import Update

    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        r = await a.journal.add("an honest reflection")
        evil: Doc[object] = Doc()
        evil["reflections"] = Text("😀 not a map")
        failures: list[str] = []
        async with connected(a, b) as (sa, sb):
            with trio.fail_after(10):
                await sa.caught_up.wait()
                await sb.caught_up.wait()
            sa.push(Update(r.shard, "devices", evil.get_update()))
            await wait_for(lambda: sb.conn.our_state.value in {"closed", "error"}
                           or sb.conn.their_state.value in {"closed", "error"})
            failures.extend([str(sb._failure)])
        assert "sequence, not a map" in failures[0]
        assert [x.text for x in await b.journal.all()] == ["an honest reflection"]
