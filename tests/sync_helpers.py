"""Fakes for sync tests: devices of one person with real stores and keyrings."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio
import trio.testing

from crdt import DocStore, SyncClass, open_store
from crdt.journal import Journal
from node.identity import KEYRING_NAME, SECRET_BYTES, Keyring, load_keyring
from node.sync.group import Group
from node.sync.session import SessionError, SyncSession
from protocol import INITIATOR, RESPONDER


@dataclass
class Device:
    name: str
    path: Path
    store: DocStore
    keyring: Keyring
    group: Group
    journal: Journal


@asynccontextmanager
async def open_devices(tmp_path: Path, names: list[str]) -> AsyncIterator[list[Device]]:
    """Devices of one person, already paired (same group, all members known)."""
    async with AsyncExitStack() as stack:
        devices: list[Device] = []
        first: Keyring | None = None
        for name in names:
            path = tmp_path / name
            path.mkdir(parents=True, exist_ok=True)
            ring = load_keyring(path)
            ring.device_name = name
            if first is None:
                first = ring
            else:
                ring.adopt_group(first.epochs)
            store = await stack.enter_async_context(open_store(path / "mirror.db"))
            group = await Group.open(store, ring)
            journal = Journal(store, share_class=SyncClass.DEVICES)
            devices.append(Device(name, path, store, ring, group, journal))
        for device in devices:
            for other in devices:
                if other is not device:
                    device.group.add_device(other.keyring.device_public, other.name)
        yield devices


def write_seeded_keyrings(tmp_path: Path, names: list[str], seed: int) -> None:
    """Keyrings for *names* (one group) with keys drawn from *seed*, for
    :func:`open_devices` to load: their relay room ids are the same every run."""
    rng = random.Random(seed)
    secret = rng.randbytes(SECRET_BYTES)
    for name in names:
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        Keyring(path=tmp_path / name / KEYRING_NAME, device_seed=rng.randbytes(32),
                device_name=name, epochs={0: secret}).save()


async def texts(device: Device) -> set[str]:
    """The texts of every reflection *device* holds now (other writers' included)."""
    await device.store.refresh()
    return {r.text for r in await device.journal.all()}


def has(device: Device, text: str) -> Callable[[], Awaitable[bool]]:
    """A :func:`wait_for` condition: *device* holds a reflection with *text*."""
    async def check() -> bool:
        return text in await texts(device)

    return check


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], deadline_s: float = 10) -> None:
    """Wait until *predicate* holds, checking after each scheduling round (bounded)."""
    with trio.fail_after(deadline_s):
        while True:
            result = predicate()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await trio.sleep(0.005)


async def run_recording(session: SyncSession, failures: list[str]) -> None:
    """Run *session*; an abnormal end is recorded, not raised."""
    try:
        await session.run()
    except SessionError as exc:
        failures.append(str(exc))


def session_pair(a: Device, b: Device) -> tuple[SyncSession, SyncSession]:
    """An unstarted session from *a* (initiator) to *b* over in-memory streams."""
    left, right = trio.testing.memory_stream_pair()
    return (
        SyncSession(a.store, a.group, left, INITIATOR),
        SyncSession(b.store, b.group, right, RESPONDER),
    )


async def run_to_the_end(*sessions: SyncSession, deadline_s: float = 15) -> list[str]:
    """Run sessions until all have ended; the failures they reported."""
    failures: list[str] = []
    with trio.fail_after(deadline_s):
        async with trio.open_nursery() as nursery:
            for session in sessions:
                nursery.start_soon(run_recording, session, failures)
    return failures


@asynccontextmanager
async def connected(
    a: Device, b: Device, **kwargs: object
) -> AsyncIterator[tuple[SyncSession, SyncSession]]:
    """Run a session between *a* (initiator) and *b* over an in-memory stream pair."""
    left, right = trio.testing.memory_stream_pair()
    sa = SyncSession(a.store, a.group, left, INITIATOR, address="b", **kwargs)  # type: ignore[arg-type]
    sb = SyncSession(b.store, b.group, right, RESPONDER, address="a", **kwargs)  # type: ignore[arg-type]

    failures: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_recording, sa, failures)
        nursery.start_soon(run_recording, sb, failures)
        yield sa, sb
        sa.close_soon("test over")
        sb.close_soon("test over")
        nursery.cancel_scope.deadline = trio.current_time() + 5
