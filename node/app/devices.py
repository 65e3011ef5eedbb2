"""The person's devices: the group, sharing documents with it, the sync status, and
running sync. Loaded by :class:`node.app.Mirror` only when one of these is asked for."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Literal

import trio

from crdt import SyncClass
from crdt.devices import clean_name
from protocol import LocalProtocolError
from protocol.pairing import new_pairing_code, normalize_pairing_code

from ..config import parse_host_port
from ..core import MirrorCore
from ..discovery.lan import advertise_pairing, find_pairing
from ..errors import MirrorError, UsageError
from ..identity import device_id_for
from ..sync.catalogue import is_local_only
from ..sync.dialing import connect_first
from ..sync.pairing import (
    PAIRING_TIMEOUT_S,
    PairerState,
    join,
    pairing_hint,
    serve_pairing_attempt,
)
from ..sync.relay import join_through_relays, serve_pairing_through_relays, usable_relays
from ..sync.runner import RunningSync, open_group, run_sync
from ..sync.service import read_status
from .results import (
    Device,
    DeviceRemoval,
    JoinResult,
    PairingAttemptReport,
    PairingOffer,
    PairingResult,
    ShareResult,
    SyncStatus,
)

Interfaces = list[str] | None | Literal["config"]
"""Where discovery runs: None, off; [], the LAN interfaces; "config", as config.json says."""

LATE_ATTEMPTS_GRACE_S = 5.0
"""After a device joined: how long attempts already under way may still take to
be refused and shown (a racing joiner)."""
JOIN_TIMEOUT_S = 60.0


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


def _interfaces(core: MirrorCore, interfaces: Interfaces) -> list[str] | None:
    if interfaces != "config":
        return interfaces
    config = core.config
    return list(config.discovery_interfaces) if config.discovery else None


def _remote_address(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


async def _advertise(interfaces: list[str], port: int, hint: bytes) -> None:
    async with advertise_pairing(interfaces=interfaces or None, port=port, pairing_tag=hint):
        await trio.sleep_forever()


async def pair(
    core: MirrorCore,
    *,
    listen: tuple[str, int] | None,
    interfaces: Interfaces,
    timeout_s: float | None,
    on_offer: Callable[[PairingOffer], None],
    stop: trio.Event | None = None,
) -> PairingResult:
    """Show a code (through *on_offer*) and wait until a device joins with it, the time
    is up or *stop* is set; every attempt on the code is in the result."""
    config = core.config
    group = await open_group(core)
    state = PairerState(code=new_pairing_code(os.urandom), done=trio.Event())
    host, port = listen or parse_host_port(config.sync_listen, what="sync_listen")
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    port = listeners[0].socket.getsockname()[1]
    timeout = timeout_s if timeout_s is not None else PAIRING_TIMEOUT_S
    on_offer(PairingOffer(state.code, f"{host}:{port}", timeout))

    async def handle(stream: trio.SocketStream) -> None:
        await serve_pairing_attempt(group, state, stream, where=_remote_address(stream))

    async def stop_when_asked(scope: trio.CancelScope) -> None:
        if stop is not None:
            await stop.wait()
            scope.cancel()

    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, handle, listeners)
            nursery.start_soon(stop_when_asked, nursery.cancel_scope)
            where = _interfaces(core, interfaces)
            if where is not None:
                nursery.start_soon(_advertise, where, port, pairing_hint(state.code))
            relays = usable_relays(config)
            if relays:  # also wait in the code's rendezvous room (a joiner off the LAN)
                nursery.start_soon(serve_pairing_through_relays, group, state, relays)
            assert state.done is not None
            await state.done.wait()
            # Attempts already under way (a joiner racing the one that got in) are
            # still answered, refused, and shown.
            with trio.move_on_after(LATE_ATTEMPTS_GRACE_S):
                await state.wait_idle()
            nursery.cancel_scope.cancel()
    joined = state.joined
    if joined is not None:
        await core.store.wait_durable()
    attempts = tuple(
        PairingAttemptReport(
            where=a.where, outcome=a.outcome.name.lower(), counted=a.counted,
            device_id=device_id_for(a.device.device_key) if a.device else None,
            name=a.device.name if a.device else None, description=a.describe(),
        )
        for a in state.tried
    )
    return PairingResult(
        joined_id=device_id_for(joined.device_key) if joined is not None else None,
        joined_name=joined.name if joined is not None else None,
        attempts=attempts,
        failure=state.failure or None,
    )


async def join_group(
    core: MirrorCore,
    code: str,
    *,
    address: tuple[str, int] | None,
    name: str | None,
    interfaces: Interfaces,
    timeout_s: float | None,
    force: bool,
) -> JoinResult:
    """Join the group of the device that shows *code*: at *address*, else found by
    discovery, else through a relay; leaving the current group only with *force*."""
    try:
        normalize_pairing_code(code)
    except LocalProtocolError as exc:
        raise UsageError(f"{code!r} is {exc}") from None
    if name:
        try:
            clean_name(name)
        except ValueError as exc:
            raise UsageError(f"--name: {exc}") from None
    group = await open_group(core)
    others = [r for r in group.active() if r.device_id != group.keyring.device_id]
    if others and not force:
        raise MirrorError(
            f"this device is already in a group with {len(others)} other device(s); "
            "pass --force to leave it for the new one"
        )
    timeout = timeout_s or JOIN_TIMEOUT_S
    relays = usable_relays(core.config)
    where = _interfaces(core, interfaces)
    if address is None and where is None and relays:
        if name:  # the name the pairer records is the one we keep, as on the LAN
            group.rename_self(name)
        try:
            with trio.fail_after(timeout):
                result = await join_through_relays(group, code, group.keyring.device_name,
                                                   relays)
        except trio.TooSlowError:
            raise MirrorError("the pairing device did not show up at the relay in time") from None
        await core.store.wait_durable()
        return JoinResult(len(result.group.devices), through_relay=True)
    if address is not None:
        candidates = [address]
    else:
        if where is None:
            raise UsageError("with discovery off, give the pairing device: --address HOST:PORT "
                             "(or add a relay: mirror relay add URL)")
        peer = await find_pairing(where or None, pairing_hint(code), timeout_s=timeout)
        candidates = peer.candidates()  # every address it advertised, best first
    try:
        with trio.fail_after(timeout):
            stream, _ = await connect_first(candidates)
    except (OSError, trio.TooSlowError) as exc:
        shown = ", ".join(f"{host}:{port}" for host, port in candidates)
        raise MirrorError(f"cannot reach the pairing device at {shown} ({exc})") from None
    if name:
        group.rename_self(name)  # the name the pairer records is the one we keep
    result = await join(group, code, stream, group.keyring.device_name)
    await core.store.wait_durable()
    return JoinResult(len(result.group.devices), through_relay=False)
