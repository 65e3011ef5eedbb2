"""The person's devices: the group, sharing documents with it, the sync status, and
running sync. Loaded by :class:`node.app.Mirror` only when one of these is asked for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import trio

from crdt import SyncClass

from ..config import parse_host_port
from ..core import MirrorCore
from ..errors import MirrorError, UsageError
from ..sync.catalogue import is_local_only
from ..sync.runner import RunningSync, open_group, run_sync
from ..sync.service import read_status
from .results import Device, DeviceRemoval, ShareResult, SyncStatus


async def devices(core: MirrorCore) -> list[Device]:
    group = await open_group(core)
    status = await trio.to_thread.run_sync(read_status, core.home.path) or {}
    seen = {p.get("device_id"): p for p in status.get("peers", []) if isinstance(p, dict)}
    out = []
    for member in group.members():
        r = member.record
        peer = seen.get(r.device_id, {})
        out.append(Device(
            device_id=r.device_id, name=r.name, this_device=member.is_self,
            active=r.active, added_at=r.added_at.isoformat(),
            removed_at=r.removed_at.isoformat() if r.removed_at else None,
            last_seen=peer.get("last_seen"), address=peer.get("address"),
        ))
    return out


async def find_device(core: MirrorCore, ref: str) -> Device:
    record = (await open_group(core)).find(ref)
    for d in await devices(core):
        if d.device_id == record.device_id:
            return d
    raise MirrorError(f"no device {ref!r}")


async def remove_device(core: MirrorCore, ref: str) -> DeviceRemoval:
    group = await open_group(core)
    removed, epoch = group.remove_device(ref)
    await core.store.wait_durable()
    return DeviceRemoval(removed.device_id, removed.name, epoch)


async def share(core: MirrorCore, what: str, sync_class: str) -> ShareResult:
    target = SyncClass.parse(sync_class)
    if target is SyncClass.COMMONS:
        raise UsageError("documents go to the Commons by publishing, not by sharing")
    if what == "journal":
        changed = await core.set_journal_class(target)
        return ShareResult("journal", target.value, tuple(changed))
    info = core.store.info(what)
    if info is None:
        raise MirrorError(f"no document {what!r} (see: mirror sync status --json)")
    if target is not SyncClass.LOCAL and is_local_only(info.doc_id):
        raise MirrorError(f"{info.doc_id} is local by nature and cannot be shared")
    await core.store.set_sync_class(info.doc_id, target)
    return ShareResult(info.doc_id, target.value, (info.doc_id,))


async def sync_status(core: MirrorCore) -> SyncStatus:
    status = await trio.to_thread.run_sync(read_status, core.home.path) or {}
    shared = tuple(i.doc_id for i in core.store.documents()
                   if i.sync_class is SyncClass.DEVICES)
    return SyncStatus(
        sync_enabled=core.config.sync_enabled,
        serving=bool(status.get("running")),
        listening=status.get("listening"),
        pending=int(status.get("pending", 0) or 0),
        peers=tuple(p for p in status.get("peers", []) if isinstance(p, dict)),
        shared_documents=shared,
    )


async def serve(
    core: MirrorCore,
    *,
    listen: tuple[str, int] | None,
    interfaces: list[str] | Literal["config"] | None,
    peers: Sequence[tuple[str, int]],
    task_status: trio.TaskStatus[RunningSync] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = core.config
    if interfaces == "config":
        interfaces = list(config.discovery_interfaces) if config.discovery else None
    await run_sync(
        core,
        listen=listen or parse_host_port(config.sync_listen, what="sync_listen"),
        interfaces=interfaces,
        peers=[*peers, *(parse_host_port(p, what="sync_peers") for p in config.sync_peers)],
        task_status=task_status,
    )
