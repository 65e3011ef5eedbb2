"""Node ↔ blind store in one process: push, pull, restore, compaction, epochs, tampering.

The store runs in-process under hypercorn on 127.0.0.1 port 0; the devices are
real stores and keyrings (tests/sync_helpers.py). The same scenarios with real
processes are in test_blind_e2e.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from commons_server.blind import BlindStoreApp, build_blind_store_app, serve_blind_store
from node.sync.blind import (
    BlindSync,
    LogState,
    RemovedFromGroup,
    StoreRefused,
    save_state,
)
from tests.sync_helpers import Device, open_devices


@asynccontextmanager
async def running_store(home: Path, database: str | None = None
                        ) -> AsyncIterator[tuple[str, BlindStoreApp]]:
    app = build_blind_store_app(home, database=database)
    try:
        async with trio.open_nursery() as nursery:
            url = await nursery.start(serve_blind_store, app, "127.0.0.1", 0)
            yield url, app
            nursery.cancel_scope.cancel()
    finally:
        app.close()


@asynccontextmanager
async def syncs(url: str, *devices: Device, **kwargs: int) -> AsyncIterator[list[BlindSync]]:
    async with httpx.AsyncClient() as http:
        out = []
        for d in devices:
            save_state(d.path, url, LogState(d.keyring.epoch))
            out.append(BlindSync(d.store, d.group, url, d.path, http, **kwargs))  # type: ignore[arg-type]
        yield out


def store_bytes(home: Path, database: str | None, request: pytest.FixtureRequest) -> bytes:
    """Every byte the store keeps: its SQLite files, or its PostgreSQL database's."""
    if database is None:
        return b"".join(p.read_bytes() for p in home.glob("blind-store.db*"))
    from tests.store_targets import StoreTarget

    server = request.getfixturevalue("postgres_server")
    return StoreTarget("postgres", database, server).stored_bytes()


async def texts(device: Device) -> set[str]:
    return {r.text for r in await device.journal.all()}


async def test_writes_reach_a_device_that_was_never_online_at_the_same_time(
    tmp_path: Path, database: str | None,
) -> None:
    async with open_devices(tmp_path, ["laptop", "phone"]) as (a, b), running_store(
        tmp_path / "server", database
    ) as (url, _):
        await a.journal.add("written while the phone was off")
        async with syncs(url, a) as (sa,):
            report = await sa.sync_once()
            assert report.pushed >= 2  # the journal shard and the membership document
        async with syncs(url, b) as (sb,):
            report = await sb.sync_once()
            assert report.rejected == 0
        assert await texts(b) == {"written while the phone was off"}
        # and back: the phone writes, the laptop pulls later
        await b.journal.add("the phone answers")
        async with syncs(url, b) as (sb,):
            await sb.sync_once()
        async with syncs(url, a) as (sa,):
            await sa.sync_once()
            assert sa.state.cursor > 0
        assert await texts(a) == {"written while the phone was off", "the phone answers"}


async def test_nothing_is_pushed_twice_and_own_envelopes_are_not_reapplied(
    tmp_path: Path, database: str | None,
) -> None:
    async with open_devices(tmp_path, ["laptop"]) as (a,), running_store(
        tmp_path / "s", database
    ) as (
        url, app,
    ):
        await a.journal.add("one")
        async with syncs(url, a) as (sa,):
            first = await sa.sync_once()
            again = await sa.sync_once()
        assert first.pushed >= 1 and again.pushed == 0 and again.applied == 0
        async with syncs(url, a) as (sa,):  # a new process: state comes from the home
            assert (await sa.sync_once()).pushed == 0


async def test_compaction_drops_covered_envelopes_and_a_new_device_restores(
    tmp_path: Path, database: str | None,
) -> None:
    async with open_devices(tmp_path, ["laptop", "new"]) as (a, c), running_store(
        tmp_path / "s", database
    ) as (url, app):
        async with syncs(url, a, compact_after=1_000_000) as (sa,):
            for i in range(20):
                await a.journal.add(f"reflection {i}")
                await sa.sync_once()
            before = await sa._client(sa.epoch).usage()
            report = await sa.sync_once(compact=True)
            after = await sa._client(sa.epoch).usage()
        assert report.compacted
        assert before["envelopes"] >= 20 and after["envelopes"] == 0
        assert after["covers"] == before["last_seq"]
        async with syncs(url, c) as (sc,):
            await sc.sync_once()
        assert await texts(c) == {f"reflection {i}" for i in range(20)}


async def test_a_stale_snapshot_is_refused_by_the_store(
    tmp_path: Path, database: str | None
) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b), running_store(
        tmp_path / "s", database
    ) as (
        url, _,
    ):
        await a.journal.add("x")
        async with syncs(url, a, b) as (sa, sb):
            await sa.sync_once()
            await sb.sync_once()
            await b.journal.add("y")
            await sb.sync_once(compact=True)
            # a's cursor is behind b's snapshot: a PUT covering less is a conflict
            with pytest.raises(StoreRefused) as caught:
                await sa._client(sa.epoch).put_snapshot(1, [])
            assert caught.value.status == 409
            assert not await sa.compact()  # a is not caught up: it does not even try
            await sa.sync_once()
        assert await texts(a) == {"x", "y"}


async def test_tampered_envelope_is_rejected_and_changes_nothing(
    tmp_path: Path, database: str | None
) -> None:
    async with open_devices(tmp_path, ["a", "b"]) as (a, b), running_store(
        tmp_path / "s", database
    ) as (
        url, app,
    ):
        await a.journal.add("first, intact")
        async with syncs(url, a) as (sa,):
            await sa.sync_once()
            await a.journal.add("second, to be tampered with")
            await sa.sync_once()
        db = app.storage._db  # the store's own connection, on either engine
        db.execute("BEGIN")
        seq, data = db.execute("SELECT seq, data FROM envelopes ORDER BY seq DESC").fetchone()
        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0x01
        db.execute("UPDATE envelopes SET data=? WHERE seq=?", (bytes(flipped), seq))
        db.execute("COMMIT")
        async with syncs(url, b) as (sb,):
            report = await sb.sync_once()
        assert report.rejected == 1
        assert await texts(b) == {"first, intact"}


async def test_removed_device_is_refused_and_the_others_move_on(
    tmp_path: Path, database: str | None
) -> None:
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c), running_store(
        tmp_path / "s", database
    ) as (url, _):
        await a.journal.add("before the removal")
        async with syncs(url, a, b, c) as (sa, sb, sc):
            for s in (sa, sb, sc):
                await s.sync_once()
            a.group.remove_device(c.keyring.device_id)
            await a.journal.add("after the removal")
            await sa.sync_once()  # retires epoch 0's log, fills epoch 1's
            assert sa.epoch == 1
            with pytest.raises(RemovedFromGroup):
                await sc.sync_once()
            # b missed the removal: it follows the forwarding notice to epoch 1
            await sb.sync_once()
            assert sb.epoch == 1
        assert await texts(b) == {"before the removal", "after the removal"}
        assert await texts(c) == {"before the removal"}


async def test_tampered_snapshot_is_rejected_and_changes_nothing(
    tmp_path: Path, database: str | None
) -> None:
    async with open_devices(tmp_path, ["a", "new"]) as (a, c), running_store(
        tmp_path / "s", database
    ) as (url, app):
        await a.journal.add("only in the snapshot")
        async with syncs(url, a) as (sa,):
            assert (await sa.sync_once(compact=True)).compacted
        db = app.storage._db
        db.execute("BEGIN")
        parts = db.execute("SELECT part, data FROM snapshot_parts").fetchall()
        for part, data in parts:
            flipped = bytearray(data)
            flipped[-1] ^= 0x01  # the signature
            db.execute("UPDATE snapshot_parts SET data=? WHERE part=?", (bytes(flipped), part))
        db.execute("COMMIT")
        before = {i.doc_id for i in c.store.documents()}
        async with syncs(url, c) as (sc,):
            report = await sc.sync_once()
            # it never uploads a snapshot over what it could not read
            assert not await sc.compact()
        assert report.rejected == len(parts) and report.applied == 0
        assert {i.doc_id for i in c.store.documents()} == before
        assert await texts(c) == set()


async def test_only_devices_documents_leave_and_local_ones_never(
    tmp_path: Path, database: str | None, request: pytest.FixtureRequest
) -> None:
    async with open_devices(tmp_path, ["a"]) as (a,), running_store(tmp_path / "s", database) as (
        url, _,
    ):
        await a.journal.add("LOCALCANARY private thought", private=True)
        await a.journal.add("shared thought")
        async with syncs(url, a) as (sa,):
            await sa.sync_once(compact=True)
        data = store_bytes(tmp_path / "s", database, request)
        assert b"LOCALCANARY" not in data and b"shared thought" not in data
        async with open_devices(tmp_path / "other", ["c"]) as (c,):
            c.keyring.adopt_group(a.keyring.epochs)
            c.group.add_device(a.keyring.device_public, "a")
            async with syncs(url, c) as (sc,):
                await sc.sync_once()
            assert await texts(c) == {"shared thought"}


async def test_running_syncs_push_live_and_pull_by_long_poll(
    tmp_path: Path, database: str | None
) -> None:
    from node.sync.blind import load_states
    from tests.sync_helpers import wait_for

    async with open_devices(tmp_path, ["a", "b"]) as (a, b), running_store(
        tmp_path / "s", database
    ) as (
        url, app,
    ), syncs(url, a, b) as (sa, sb), trio.open_nursery() as nursery:
        await nursery.start(sa.run)
        await nursery.start(sb.run)
        await wait_for(lambda: app.statistics().waiting_pulls == 2)  # both parked, caught up
        await a.journal.add("live, through the store")

        async def b_has_it() -> bool:
            return await texts(b) == {"live, through the store"}

        await wait_for(b_has_it, deadline_s=15)
        # `mirror store remove` while it runs: b's sync stops at its next save
        save_state(b.path, url, None)
        await b.journal.add("after b dropped the store")
        await wait_for(lambda: len(nursery.child_tasks) == 1, deadline_s=15)
        assert url not in load_states(b.path)
        nursery.cancel_scope.cancel()
