"""Devices on different group epochs meet through a relay.

A device that was offline while another was removed still waits in the pair
room of the old epoch; the up-to-date device keeps that room too (for a few
epochs the peer belonged to), the peer catches up there, moves to the new
room, and the old room is left. A removed device that enters the old room
gets nothing. Relay on 127.0.0.1 port 0, no LAN discovery; every wait is on a
condition (the relay's statistics, the devices' state).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import nacl.signing
import trio

from node.sync.relay import (
    MAX_EARLIER_EPOCH_ROOMS,
    RelayLinks,
    RelayStream,
    stay_in_room,
)
from node.sync.service import SyncService
from node.sync.session import SessionError, SyncSession
from protocol.relay import pair_room
from relay import RelayApp
from tests.sync_helpers import Device, has, open_devices, texts, wait_for
from tests.test_relay_sync import relay_at


@dataclass
class Online:
    device: Device
    service: SyncService
    links: RelayLinks


def service_for(device: Device) -> SyncService:
    # The service needs the core's store and home only.
    core = SimpleNamespace(store=device.store, home=SimpleNamespace(path=device.path))
    return SyncService(core, device.group, listen=("127.0.0.1", 0))  # type: ignore[arg-type]


@asynccontextmanager
async def online(device: Device, relays: list[str]) -> AsyncIterator[Online]:
    """*device* running its sync service, reachable through *relays* only."""
    service = service_for(device)
    links = RelayLinks(service, relays)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        nursery.start_soon(links.run)
        yield Online(device, service, links)
        nursery.cancel_scope.cancel()


def relay_holds(app: RelayApp, rooms: int, connections: int) -> bool:
    stats = app.statistics()
    return stats.rooms == rooms and stats.connections == connections


async def test_a_device_that_missed_a_removal_catches_up_through_the_relay(
    tmp_path: Path,
) -> None:
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c), \
            relay_at() as (recorder, url):
        relay = recorder.app
        a_id, b_id, c_id = (d.keyring.device_id for d in (a, b, c))
        await a.journal.add("before the removal")
        async with online(a, [url]) as on_a:
            async with online(b, [url]) as on_b:
                await wait_for(has(b, "before the removal"))
                # No epoch change yet: one room per pair (a-b; a and b each wait for c).
                await wait_for(lambda: relay_holds(relay, rooms=3, connections=4))
                assert on_a.links.rooms == {(b_id, 0), (c_id, 0)}
                assert on_b.links.rooms == {(a_id, 0), (c_id, 0)}
            # b goes offline; while it is away, a removes c.
            await wait_for(lambda: relay_holds(relay, rooms=2, connections=2))
            a.group.remove_device(c_id)
            await a.journal.add("written after the removal")
            # a waits for b in the rooms of epoch 1 and of epoch 0 (b's), not for c.
            await wait_for(lambda: on_a.links.rooms == {(b_id, 1), (b_id, 0)})
            await wait_for(lambda: relay_holds(relay, rooms=2, connections=2))
            assert b.keyring.epoch == 0

            async with online(b, [url]) as on_b:
                await wait_for(has(b, "written after the removal"))
                await wait_for(lambda: b.keyring.epoch == 1)
                assert b.keyring.epochs[1] == a.keyring.epochs[1]
                assert c_id not in {r.device_id for r in b.group.active()}
                # Both met at epoch 1: the epoch-0 room is left, on both sides.
                await wait_for(lambda: on_a.service.peer_epochs.get(b_id) == 1)
                await wait_for(lambda: on_a.links.rooms == {(b_id, 1)})
                await wait_for(lambda: on_b.links.rooms == {(a_id, 1)})
                await wait_for(lambda: relay_holds(relay, rooms=1, connections=2))
                # And they keep syncing there, at the new epoch.
                await a.journal.add("live at epoch 1")
                await wait_for(has(b, "live at epoch 1"))
                session = on_a.service.sessions.get(b_id)
                assert session is not None and session.epoch == 1
        assert "written after the removal" not in await texts(c)


async def test_a_removed_device_in_the_old_room_gets_nothing(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c), \
            relay_at() as (recorder, url):
        relay = recorder.app
        b_id, c_id = b.keyring.device_id, c.keyring.device_id
        secret_0 = a.keyring.epochs[0]
        a.group.remove_device(c_id)
        await a.journal.add("written after c was removed")
        async with online(a, [url]) as on_a:
            await wait_for(lambda: relay_holds(relay, rooms=2, connections=2))
            assert on_a.links.rooms == {(b_id, 1), (b_id, 0)}

            # c still holds the epoch-0 secret and knows both device keys, so it can
            # compute the a-b room of epoch 0 and enter it. Its key decides.
            old_room = pair_room(secret_0, 0, a.keyring.device_public, b.keyring.device_public)
            intruder: list[SyncSession] = []

            async def as_c(stream: RelayStream) -> None:
                session = SyncSession(c.store, c.group, stream, stream.role,
                                      address=f"relay:{stream.relay}")
                intruder.append(session)
                with contextlib.suppress(SessionError):
                    await session.run()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(stay_in_room, [url], lambda: old_room, as_c)
                # a refuses c (more than once: whoever speaks first), then c stops trying.
                await wait_for(lambda: on_a.service.stats.sessions_failed >= 2
                               and len(intruder) >= 2)
                nursery.cancel_scope.cancel()
            assert all(s.stats.updates_in == 0 for s in intruder)
            assert c_id not in on_a.service.stats.peers
            assert c_id not in on_a.service.peer_epochs
            assert not on_a.service.sessions
            assert "written after c was removed" not in await texts(c)

            # The room still serves b, which catches up there once c is gone.
            async with online(b, [url]):
                await wait_for(has(b, "written after c was removed"), deadline_s=40)
                await wait_for(lambda: b.keyring.epoch == 1)
                await wait_for(lambda: on_a.links.rooms == {(b_id, 1)})


async def test_earlier_rooms_only_for_epochs_the_peer_belonged_to_and_few(
    tmp_path: Path,
) -> None:
    async with open_devices(tmp_path, ["a", "b", "c", "d", "e"]) as (a, b, c, d, e):
        service = service_for(a)
        links = RelayLinks(service, [])
        b_key, e_key = b.keyring.device_public, e.keyring.device_public

        def rooms_for(key: bytes) -> list[int]:
            return sorted((ep for k, ep in links.wanted() if k == key), reverse=True)

        # No removal: exactly one room per peer, at the only epoch.
        assert all(rooms_for(x.keyring.device_public) == [0] for x in (b, c, d, e))
        assert len(links.wanted()) == 4

        a.group.remove_device(c.keyring.device_id)  # epoch 1
        a.group.remove_device(d.keyring.device_id)  # epoch 2
        late = nacl.signing.SigningKey.generate().verify_key.encode()
        a.group.add_device(late, "joined at epoch 2")
        a.group.remove_device(e.keyring.device_id)  # epoch 3
        newest = nacl.signing.SigningKey.generate().verify_key.encode()
        a.group.add_device(newest, "joined at epoch 3")
        assert a.keyring.epoch == 3

        # b was in every epoch: the current room and the newest earlier ones, bounded.
        assert rooms_for(b_key) == [3, *range(2, 2 - MAX_EARLIER_EPOCH_ROOMS, -1)]
        assert MAX_EARLIER_EPOCH_ROOMS == 2
        # A device that joined during epoch 2 never had the secrets of 0 and 1.
        assert rooms_for(late) == [3, 2]
        # One that joined after the last removal, and removed devices: nothing older.
        assert rooms_for(newest) == [3]
        assert rooms_for(e_key) == []
        # Once b is known to hold an epoch, older rooms go; at the current one, all do.
        service.peer_epochs[b.keyring.device_id] = 2
        assert rooms_for(b_key) == [3, 2]
        service.peer_epochs[b.keyring.device_id] = 3
        assert rooms_for(b_key) == [3]
