"""Removing a device ends every live session with it (issue 15, item 4).

The attack: c is removed on a while sessions are open on all sides (a-b, a-c,
b-c). Before, those sessions went on: c's writes still reached a and b, and a's
reached c, although new sessions were refused. Now a removal ends each session
with the removed device at once on every remaining device as soon as that device
knows of the new epoch (a at once, b when a's membership update reaches it), the
removed device ends its own sessions when it learns it was removed, and nothing
the removed device sends after that is applied anywhere. Direct sessions over
memory streams and over TCP on 127.0.0.1, and sessions through a relay on
127.0.0.1; every wait is on a condition.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from pycrdt import Map

from crdt import open_store
from node.sync.group import Group
from node.sync.session import CLOSE_GRACE_S, SyncSession
from protocol import INITIATOR, RESPONDER
from protocol.limits import IDLE_TIMEOUT_S
from tests.sync_helpers import Device, has, open_devices, run_recording, texts, wait_for
from tests.test_relay_epochs import online, service_for
from tests.test_relay_sync import relay_at


class Mesh:
    """Sessions between every two of *devices* over memory streams, recorded by pair."""

    def __init__(self) -> None:
        self.sessions: dict[tuple[str, str], SyncSession] = {}
        self.failures: dict[tuple[str, str], list[str]] = {}

    def start(self, nursery: trio.Nursery, a: Device, b: Device) -> None:
        left, right = trio.testing.memory_stream_pair()
        for me, peer, stream, role in ((a, b, left, INITIATOR), (b, a, right, RESPONDER)):
            session = SyncSession(me.store, me.group, stream, role, address=peer.name)
            self.sessions[me.name, peer.name] = session
            failures = self.failures[me.name, peer.name] = []
            nursery.start_soon(self._run, session, failures)

    async def _run(self, session: SyncSession, failures: list[str]) -> None:
        await run_recording(session, failures)
        session.ended = True  # type: ignore[attr-defined]

    def ended(self, me: str, peer: str) -> bool:
        return bool(getattr(self.sessions[me, peer], "ended", False))

    async def all_caught_up(self) -> None:
        with trio.fail_after(15):
            for session in self.sessions.values():
                await session.caught_up.wait()


async def test_a_removal_ends_the_sessions_on_all_sides(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c):
        mesh = Mesh()
        async with trio.open_nursery() as nursery:
            for x, y in ((a, b), (a, c), (b, c)):
                mesh.start(nursery, x, y)
            await mesh.all_caught_up()
            await c.journal.add("c before the removal")
            await wait_for(has(a, "c before the removal"))
            await wait_for(has(b, "c before the removal"))

            a.group.remove_device(c.keyring.device_id)
            # a knows at once: its session with c ends on both ends.
            await wait_for(lambda: mesh.ended("a", "c") and mesh.ended("c", "a"))
            # b learns of the new epoch from a, and ends its session with c; c
            # learns that it was removed, and ends what it still has.
            await wait_for(lambda: b.keyring.epoch == 1)
            await wait_for(lambda: mesh.ended("b", "c") and mesh.ended("c", "b"))
            assert c.group.excluded
            assert not mesh.ended("a", "b") and not mesh.ended("b", "a")
            assert any("removed from the group" in f for f in mesh.failures["a", "c"])
            assert any("removed from the group" in f for f in mesh.failures["b", "c"])

            await c.journal.add("c after the removal")
            await a.journal.add("a after the removal")
            await b.journal.add("b after the removal")
            await wait_for(has(b, "a after the removal"))
            await wait_for(has(a, "b after the removal"))
            nursery.cancel_scope.cancel()
        assert {"c after the removal"}.isdisjoint(await texts(a) | await texts(b))
        assert {"a after the removal", "b after the removal"}.isdisjoint(await texts(c))


async def test_what_the_removed_device_sends_after_the_removal_is_not_applied(
    tmp_path: Path,
) -> None:
    """c writes in the very moment it is removed on a: its update reaches a after
    the removal and is refused; a's next write never reaches c."""
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c):
        mesh = Mesh()
        async with trio.open_nursery() as nursery:
            mesh.start(nursery, a, c)
            await mesh.all_caught_up()
            before = mesh.sessions["a", "c"].stats.updates_in
            a.group.remove_device(c.keyring.device_id)
            await c.journal.add("c racing its removal")  # pushed before c hears anything
            await a.journal.add("a right after the removal")
            await wait_for(lambda: mesh.ended("a", "c") and mesh.ended("c", "a"))
            nursery.cancel_scope.cancel()
        assert mesh.sessions["a", "c"].stats.updates_in == before
        assert "c racing its removal" not in await texts(a)
        assert "a right after the removal" not in await texts(c)


class Deaf(trio.abc.Stream):
    """The removed device's end, hostile: from *deaf* on it reads nothing (so it
    never sees the Close) and never hangs up, while its session goes on writing
    heartbeats that keep the other end from going idle."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.deaf = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.deaf:
            await trio.sleep_forever()
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_removed_device_that_ignores_the_close_is_cut_off(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_devices(tmp_path, ["a", "c"]) as (a, c):
        left, right = trio.testing.memory_stream_pair()
        deaf = Deaf(right)
        sa = SyncSession(a.store, a.group, left, INITIATOR)
        sc = SyncSession(c.store, c.group, deaf, RESPONDER)
        failures: list[str] = []
        ended = trio.Event()

        async def run_a() -> None:
            await run_recording(sa, failures)
            ended.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run_a)
            nursery.start_soon(run_recording, sc, [])
            with trio.fail_after(10):
                await sa.caught_up.wait()
                await sc.caught_up.wait()
            deaf.deaf = True  # c hears nothing more: not its removal, not the Close
            before = sa.stats.updates_in
            a.group.remove_device(c.keyring.device_id)
            removed_at = trio.current_time()
            with trio.fail_after(5 * IDLE_TIMEOUT_S):
                await ended.wait()
            ended_after = trio.current_time() - removed_at
            nursery.cancel_scope.cancel()
        assert ended_after <= CLOSE_GRACE_S + 0.5, ended_after
        assert sa.stats.updates_in == before
        assert any("removed from the group" in f for f in failures), failures


async def test_removal_ends_direct_sessions_between_services(tmp_path: Path) -> None:
    """Three sync services on 127.0.0.1, each dialling the others over TCP."""
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c):
        services = {d.name: service_for(d) for d in (a, b, c)}
        ids = {d.name: d.keyring.device_id for d in (a, b, c)}
        async with trio.open_nursery() as nursery:
            ports = {name: await nursery.start(s.run) for name, s in services.items()}
            services["a"].dial(("127.0.0.1", ports["b"]))
            services["a"].dial(("127.0.0.1", ports["c"]))
            services["b"].dial(("127.0.0.1", ports["c"]))
            await wait_for(lambda: all(len(s.sessions) == 2 for s in services.values()))
            await c.journal.add("c before")
            await wait_for(has(a, "c before"))
            await wait_for(has(b, "c before"))

            a.group.remove_device(ids["c"])
            await wait_for(lambda: ids["c"] not in services["a"].sessions)
            await wait_for(lambda: ids["c"] not in services["b"].sessions)
            await wait_for(lambda: not services["c"].sessions)
            await c.journal.add("c after")
            await a.journal.add("a after")
            await wait_for(has(b, "a after"))
            await b.journal.add("b after")
            await wait_for(has(a, "b after"))
            assert ids["b"] in services["a"].sessions and ids["a"] in services["b"].sessions
            nursery.cancel_scope.cancel()
        assert "c after" not in await texts(a) | await texts(b)
        assert {"a after", "b after"}.isdisjoint(await texts(c))


async def test_removal_ends_sessions_through_the_relay(tmp_path: Path) -> None:
    """The same three devices, meeting only through a relay on 127.0.0.1."""
    async with open_devices(tmp_path, ["a", "b", "c"]) as (a, b, c), \
            relay_at() as (recorder, url):
        ids = {d.name: d.keyring.device_id for d in (a, b, c)}
        async with online(a, [url]) as on_a, online(b, [url]) as on_b, \
                online(c, [url]) as on_c:
            await wait_for(lambda: all(len(o.service.sessions) == 2
                                       for o in (on_a, on_b, on_c)), deadline_s=30)
            assert all(s.stats.address.startswith("relay:")
                       for o in (on_a, on_b, on_c) for s in o.service.sessions.values())
            await c.journal.add("c before")
            await wait_for(has(a, "c before"))
            await wait_for(has(b, "c before"))

            a.group.remove_device(ids["c"])
            await wait_for(lambda: ids["c"] not in on_a.service.sessions)
            await wait_for(lambda: ids["c"] not in on_b.service.sessions)
            await wait_for(lambda: not on_c.service.sessions)
            await c.journal.add("c after")
            await a.journal.add("a after")
            await wait_for(has(b, "a after"), deadline_s=30)
            await b.journal.add("b after")
            await wait_for(has(a, "b after"), deadline_s=30)
            # a and b leave the rooms they kept for c; c holds no room with them.
            await wait_for(lambda: {p for p, _ in on_a.links.rooms} == {ids["b"]})
            await wait_for(lambda: {p for p, _ in on_b.links.rooms} == {ids["a"]})
            await wait_for(lambda: not on_c.links.rooms)
        assert "c after" not in await texts(a) | await texts(b)
        assert {"a after", "b after"}.isdisjoint(await texts(c))


@asynccontextmanager
async def second_handle(device: Device) -> AsyncIterator[Group]:
    """The device's home opened by another writer, as ``mirror devices remove`` does
    while ``mirror serve`` runs."""
    async with open_store(device.path / "mirror.db") as store:
        yield await Group.open(store, device.keyring)
        await store.wait_durable()


async def test_a_removal_by_another_process_ends_the_running_sessions(
    tmp_path: Path,
) -> None:
    async with open_devices(tmp_path, ["a", "c"]) as (a, c):
        service_a, service_c = service_for(a), service_for(c)
        c_id = c.keyring.device_id
        async with trio.open_nursery() as nursery:
            await nursery.start(service_a.run)
            port_c = await nursery.start(service_c.run)
            service_a.dial(("127.0.0.1", port_c))
            await wait_for(lambda: c_id in service_a.sessions and bool(service_c.sessions))
            async with second_handle(a) as other:
                other.remove_device(c_id)
            # a's service picks the other writer's change up (its refresh loop) and
            # ends the session; c's writes stop arriving.
            await wait_for(lambda: c_id not in service_a.sessions)
            assert not a.group.admits(c.keyring.device_public)
            await c.journal.add("c after the other process removed it")
            await a.journal.add("a after")
            await wait_for(lambda: not service_c.sessions)
            nursery.cancel_scope.cancel()
        assert "c after the other process removed it" not in await texts(a)
        assert "a after" not in await texts(c)


async def test_a_record_missing_for_a_moment_is_not_a_removal(tmp_path: Path) -> None:
    """While a peer's update waits for the ones it depends on, the member records it
    overwrites can be missing from the document (seen in a three-device mesh): the
    device is still a member; only a removal mark ends its sessions."""
    from crdt.devices import DOC_ID

    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        members = a.store.loaded(DOC_ID).doc.get("members", type=Map)  # type: ignore[union-attr]
        del members[b.keyring.device_id]  # what a pending overwrite looks like
        a.group.refresh()
        assert b.keyring.device_public in a.group.known
        assert a.group.admits(b.keyring.device_public)
        assert b.keyring.device_id in {r.device_id for r in a.group.active()}
        a.group.add_device(b.keyring.device_public, "b")  # the update it waited for
        a.group.remove_device(b.keyring.device_id)
        assert b.keyring.device_public not in a.group.known
        assert not a.group.admits(b.keyring.device_public)
        assert b.keyring.device_id not in {r.device_id for r in a.group.active()}


async def connected_peers(home: Path) -> set[str]:
    """Device ids of the peers ``mirror sync status`` shows connected for *home*."""
    from tests.test_sync_e2e import mirror

    status, out, _ = await mirror(home, "sync", "status", "--json")
    if status != 0:
        return set()
    return {p["device_id"] for p in json.loads(out)["peers"] if p.get("connected")}


def peers_are(home: Path, names: set[str]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await connected_peers(home) == names

    return check


@pytest.mark.slow  # three serve processes and many CLI runs: about 90 s here
async def test_the_reported_scenario_with_real_processes(tmp_path: Path) -> None:
    """As reported: three ``mirror serve`` processes syncing on 127.0.0.1, then
    ``mirror devices remove c --yes`` on a (another process). c's sessions end
    everywhere; c's next reflection reaches nobody, a's does not reach c."""
    from tests.helpers import start_mirror, stop_mirror
    from tests.test_sync_e2e import LOOPBACK, has, mirror

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for joiner, name in ((b, "b"), (c, "c")):
        pairing = await start_mirror(a, "pair", "--json", *LOOPBACK, "--timeout", "60")
        code, address = str(pairing.json["code"]), str(pairing.json["address"])
        status, _, err = await mirror(joiner, "join", code, "--address", address,
                                      "--no-discovery", "--name", name)
        assert status == 0, err
        with trio.fail_after(30):
            assert await pairing.process.wait() == 0  # type: ignore[attr-defined]
    for home in (a, b, c):
        status, _, err = await mirror(home, "share", "journal", "--class", "devices")
        assert status == 0, err
    serve_a = await start_mirror(a, "serve", "--json", *LOOPBACK)
    addr_a = str(serve_a.json["address"])
    serve_b = await start_mirror(b, "serve", "--json", *LOOPBACK, "--peer", addr_a)
    addr_b = str(serve_b.json["address"])
    serve_c = await start_mirror(c, "serve", "--json", *LOOPBACK, "--peer", addr_a,
                                 "--peer", addr_b)
    try:
        # b learns of c from a's membership document; sessions on all sides.
        ids = {}
        for home in (a, b, c):
            status, out, _ = await mirror(home, "devices", "--json")
            ids[home] = next(d["device_id"] for d in json.loads(out) if d["this_device"])
        await wait_for(peers_are(a, {ids[b], ids[c]}), deadline_s=30)
        await wait_for(peers_are(b, {ids[a], ids[c]}), deadline_s=30)
        await wait_for(peers_are(c, {ids[a], ids[b]}), deadline_s=30)
        status, _, err = await mirror(c, "reflect", "c before the removal")
        assert status == 0, err
        await wait_for(lambda: has(a, "c before the removal"), deadline_s=30)
        await wait_for(lambda: has(b, "c before the removal"), deadline_s=30)

        status, out, err = await mirror(a, "devices", "remove", "c", "--yes")
        assert status == 0, err
        await wait_for(peers_are(a, {ids[b]}), deadline_s=30)
        await wait_for(peers_are(b, {ids[a]}), deadline_s=30)
        await wait_for(peers_are(c, set()), deadline_s=30)
        status, _, err = await mirror(c, "reflect", "c after the removal")
        assert status == 0, err
        status, _, err = await mirror(a, "reflect", "a after the removal")
        assert status == 0, err
        await wait_for(lambda: has(b, "a after the removal"), deadline_s=30)
        assert await connected_peers(c) == set()
    finally:
        for proc in (serve_c, serve_b, serve_a):
            assert await stop_mirror(proc) == 0
    assert not await has(a, "c after the removal")
    assert not await has(b, "c after the removal")
    assert not await has(c, "a after the removal")
