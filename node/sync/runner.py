"""Running a node's sync: the service, discovery feeding it, and peer names for
arrival notices. ``mirror serve`` runs it in the foreground; the REPL runs it
in the background when ``sync_enabled`` is on."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from crdt import StoredDoc, UpdateSource
from protocol import discovery_tag

from ..core import MirrorCore
from ..identity import load_keyring
from .documents import SessionPeer
from .group import Group
from .service import SyncService

if TYPE_CHECKING:
    from ..discovery.lan import Discovery

log = logging.getLogger("mirror.sync")


@dataclass(frozen=True)
class RunningSync:
    """A sync service started by :func:`running_sync`, its group and listening port."""

    service: SyncService
    group: Group
    port: int


async def open_group(core: MirrorCore) -> Group:
    ring = await trio.to_thread.run_sync(load_keyring, core.home.path)
    return await Group.open(core.store, ring)


@asynccontextmanager
async def _discovery(group: Group, port: int, interfaces: list[str] | None) -> AsyncIterator[Any]:
    if interfaces is None:
        yield None
        return
    # reason: start-up; zeroconf is loaded only when discovery is on
    from ..discovery.lan import open_discovery

    def tag_for_hour(hour: int) -> bytes:
        return discovery_tag(group.keyring.group_secret, group.keyring.epoch, hour)

    def earlier_tags(hour: int) -> list[tuple[int, bytes]]:
        ring = group.keyring
        return [(e, discovery_tag(s, e, hour)) for e, s in ring.epochs.items() if e < ring.epoch]

    async with open_discovery(
        interfaces=interfaces or None,
        port=port,
        tag_for_hour=tag_for_hour,
        clock=time.time,
        earlier_tags=earlier_tags,
    ) as disc:
        yield disc


async def run_sync(
    core: MirrorCore,
    *,
    listen: tuple[str, int],
    interfaces: list[str] | None,
    peers: Iterable[tuple[str, int]] = (),
    relays: Sequence[str] | None = None,
    task_status: trio.TaskStatus[RunningSync] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve sync until cancelled. *interfaces*: None = no discovery, [] = LAN.
    *relays*: None = the configured ones this mode may use."""
    group = await open_group(core)

    def arrived(session: SessionPeer, stored: StoredDoc) -> None:
        source = UpdateSource.of(session.origin)
        name = core.peer_names.get(source)
        if name is None:
            name = _device_name(group, session.peer_device_id)
            core.peer_names[source] = name

    service = SyncService(core, group, listen=listen, peers=peers, on_arrival=arrived,
                          refresher=core.refresher)
    async with trio.open_nursery() as nursery:
        # A reflection deleted on another device is forgotten and scrubbed here too.
        await nursery.start(core.follow_peer_deletes)
        port = await nursery.start(service.run)
        # reason: start-up; httpx-ws is loaded only when a relay is configured
        from .relay import RelayLinks, usable_relays

        relays = usable_relays(core.config) if relays is None else tuple(relays)
        if relays:  # through a relay to each device that is not on the LAN
            nursery.start_soon(RelayLinks(service, relays).run)
        # reason: start-up; httpx is loaded only when the mode allows blind stores
        from .blind import load_states, run_blind_stores, usable_stores

        stores = usable_stores(core.config.mirror_mode, load_states(core.home.path))
        if stores:  # through blind stores to devices that are never online with this one
            await nursery.start(run_blind_stores, core.store, group, core.home.path, stores)
        task_status.started(RunningSync(service, group, port))
        async with _discovery(group, port, interfaces) as disc:
            if disc is None:
                await trio.sleep_forever()
            await dial_discovered(service, disc)


async def dial_discovered(service: SyncService, disc: Discovery) -> None:
    """Dial each device discovery finds, at every address it advertised (best
    first), until cancelled."""
    from ..discovery.lan import PeerFound  # reason: start-up (zeroconf), as above

    with disc.subscribe() as events:  # starts with the peers already known
        async for event in events:
            if isinstance(event, PeerFound):
                service.dial(*event.peer.candidates(), epoch=event.peer.epoch)


def _device_name(group: Group, device_id: str) -> str:
    for record in group.active():
        if record.device_id == device_id:
            return record.name
    return "another device"
