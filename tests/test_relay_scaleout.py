"""Relays scaled out, for real: three ``mirror-relay`` processes behind Debian's
HAProxy configured exactly as docs/relay.md says, and the same three listed on
every device (client-side rendezvous hashing).

What must hold either way: both devices of a room reach the same instance;
rooms spread over the instances; when one instance dies (SIGKILL; behind the
proxy also when it hangs, SIGSTOP, or is stopped for a restart, SIGTERM), only
the rooms it held move, their devices resume on the room's next instance, and
the sessions of every other room go on untouched; when it comes back, a device
that waited alone on the fallback meets its peer at the room's own instance.
Devices are real stores and sync sessions run by the node's reconnect logic
(``stay_in_room``); relays and HAProxy are real processes.

The HAProxy tests skip (with the reason) where ``haproxy`` is not installed;
``.ci/run`` installs it.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import httpx
import pytest
import trio
from httpx_ws import aconnect_ws

from node.sync.relay import rank_relays, room_url
from tests.haproxy_helper import (
    HAProxy,
    Server,
    check_config,
    fenced_block,
    haproxy_unavailable,
    loopback_config,
    run_haproxy,
)
from tests.helpers import REPO, MirrorProcess, stop_mirror
from tests.relay_links import links_of
from tests.relay_processes import RelayFleet, RelayProcess, relay_processes
from tests.sync_helpers import Device, open_devices, wait_for, write_seeded_keyrings
from tests.test_relay_e2e import pair_and_serve_through_relay
from tests.test_sync_e2e import has, mirror

INSTANCES = ("r1", "r2", "r3")
DEVICES = ["laptop", "phone", "tablet", "desktop"]  # one person: 6 pair rooms
SPREAD_ROOMS = 60
# Behind a proxy every connection comes from the proxy's address (docs/relay.md).
BEHIND_PROXY = ("--max-connections-per-address", "1000")
RESUME_DEADLINE_S = 30.0
REJOIN_FOR_TEST_S = 1.0  # node.sync.relay.REJOIN_ALONE_AFTER_S, shortened


def needs_haproxy() -> None:
    reason = haproxy_unavailable()
    if reason:
        pytest.skip(reason)


def documented_config() -> str:
    return fenced_block(REPO / "docs" / "relay.md", "haproxy", "backend relays")


def servers(relays: Sequence[RelayProcess]) -> list[Server]:
    return [Server(r.name, r.address) for r in relays]


def ws_url(base: str, room: str) -> str:
    return base.replace("http://", "ws://") + "/v1/rooms/" + room


# --------------------------------------------------------------------------- the proxy itself


def test_the_documented_haproxy_config_is_run_as_written() -> None:
    needs_haproxy()
    template = documented_config()
    assert "balance uri" in template and "hash-type consistent" in template
    loopback = [Server("r1", "127.0.0.1:1"), Server("r2", "127.0.0.1:2")]
    rendered = loopback_config(template, loopback, listen_fd=3,
                               stats_socket=Path("/tmp/admin.sock"))
    kept = [line for line in template.splitlines()
            if line.split()[:1] not in (["bind"], ["server"])]
    assert [line for line in rendered.splitlines() if line in kept] == kept, "only bind/server"
    assert "server r1 127.0.0.1:1 check" in rendered
    assert "server r2 127.0.0.1:2 check" in rendered
    output = check_config(template, loopback)
    assert "[WARNING]" not in output and "[ALERT]" not in output, output


async def test_rooms_spread_over_three_instances_and_both_ends_of_a_room_meet(
    tmp_path: Path,
) -> None:
    needs_haproxy()
    rooms = [hashlib.sha256(f"spread {i}".encode()).hexdigest() for i in range(SPREAD_ROOMS)]
    async with relay_processes(tmp_path, INSTANCES, *BEHIND_PROXY) as relays, \
            run_haproxy(documented_config(), servers(relays)) as proxy, \
            httpx.AsyncClient(limits=httpx.Limits(max_connections=None)) as http, \
            trio.open_nursery() as nursery:
        met: list[str] = []

        async def both_ends(room: str) -> None:
            async with aconnect_ws(ws_url(proxy.url, room), http) as first:
                assert await first.receive_text() == "present 0"
                async with aconnect_ws(ws_url(proxy.url, room), http) as second:
                    # The second end found the first: the proxy sent both to one instance.
                    assert await second.receive_text() == "present 1"
                    assert await first.receive_text() == "joined 1"
                    met.append(room)
                    await trio.sleep_forever()

        for room in rooms:
            nursery.start_soon(both_ends, room)
        await wait_for(lambda: len(met) == len(rooms))
        held = {r.name: await r.rooms() for r in relays}
        nursery.cancel_scope.cancel()
    assert sum(held.values()) == SPREAD_ROOMS
    # Consistent hashing spreads unevenly with few keys; each instance still takes
    # a fair part (measured: about a third each, within +-25 %).
    assert min(held.values()) >= SPREAD_ROOMS // 6, held


# --------------------------------------------------------------------------- devices


async def texts(device: Device) -> set[str]:
    await device.store.refresh()
    return {r.text for r in await device.journal.all()}


def everyone_has(devices: list[Device], written: Callable[[Device], str]) -> Callable[
        [], Awaitable[bool]]:
    async def check() -> bool:
        for device in devices:
            seen = await texts(device)
            if any(written(other) not in seen for other in devices):
                return False
        return True

    return check


Placement = Callable[[bytes], Awaitable[str]]
"""Where a room goes (the instance's name): asked of the proxy, or predicted."""


Failure = Callable[[RelayProcess], Awaitable[None]]


async def instance_fails_and_only_its_rooms_move(
    tmp_path: Path, relays: list[RelayProcess], device_relays: list[str], placement: Placement,
    fail: Failure = RelayProcess.kill,
) -> None:
    """The scenario both ways of placing rooms must pass (see the module docstring).

    *placement* is asked before the devices start, and again for the moved rooms
    once they have left (a third party in a room would disturb its session).
    """
    write_seeded_keyrings(tmp_path, DEVICES, seed=19)
    async with open_devices(tmp_path, DEVICES) as devices:
        links = links_of(devices, device_relays)
        rooms = sorted({link.room for link in links})
        owner = {room: await placement(room) for room in rooms}
        counts = Counter(owner.values())
        victim_name = counts.most_common(1)[0][0]
        assert len(counts) >= 2, f"the seeded rooms all land on one instance: {counts}"
        victim = next(r for r in relays if r.name == victim_name)
        survivors = [r for r in relays if r is not victim]
        moved = {room for room in rooms if owner[room] == victim_name}
        for device in devices:
            await device.journal.add(f"before, from {device.name}")
        async with trio.open_nursery() as nursery:
            for link in links:
                nursery.start_soon(link.run)
            await wait_for(everyone_has(devices, lambda d: f"before, from {d.name}"),
                           deadline_s=RESUME_DEADLINE_S)
            await wait_for(lambda: all(link.in_session() for link in links))
            # The rooms are where they were placed, and nowhere else.
            assert {r.name: await r.rooms() for r in relays} == {
                r.name: counts.get(r.name, 0) for r in relays}
            before = {id(link): (len(link.sessions), link.stats.connects) for link in links}

            await fail(victim)

            def resumed() -> bool:  # every link of a moved room is in a new session
                return all(link.in_session() and len(link.sessions) > before[id(link)][0]
                           for link in links if link.room in moved)

            await wait_for(resumed, deadline_s=RESUME_DEADLINE_S)
            for device in devices:
                await device.journal.add(f"after, from {device.name}")
            await wait_for(everyone_has(devices, lambda d: f"after, from {d.name}"),
                           deadline_s=RESUME_DEADLINE_S)
            await wait_for(lambda: all(link.in_session() for link in links))
            held_after = {r.name: await r.rooms() for r in survivors}
            nursery.cancel_scope.cancel()

        for link in links:
            sessions, connects = before[id(link)]
            if link.room in moved:  # reconnected, and a new session caught up
                assert link.stats.connects > connects
                assert len(link.sessions) > sessions
            else:  # untouched: the same connection, the same session
                assert (len(link.sessions), link.stats.connects) == (sessions, connects)
        assert not any(link.failures for link in links), [link.failures for link in links]
        # The moved rooms went where the placement now sends them, the others stayed.
        expected = Counter({r.name: counts.get(r.name, 0) for r in survivors})
        expected.update([await placement(room) for room in sorted(moved)])
        assert held_after == dict(expected)


def probe_through(proxy: HAProxy, relays: list[RelayProcess]) -> Placement:
    """Where HAProxy sends a room: open it once and see which server's count moved.

    Once HAProxy has taken a dead instance out (DOWN): the devices of its rooms
    mostly came back before that, redispatched from the refused connection, and
    must have landed where the room now goes for good.
    """

    async def placement(room: bytes) -> str:
        for relay in relays:
            if not relay.serving:
                await proxy.wait_for_state(relay.name, "DOWN")
        before = await proxy.sessions_total()
        async with httpx.AsyncClient() as http, \
                aconnect_ws(room_url(proxy.url, room), http) as ws:
            assert (await ws.receive_text()).startswith("present ")
        after = await proxy.sessions_total()
        moved = [name for name in after if after[name] != before.get(name)]
        assert len(moved) == 1, (before, after)
        return moved[0]

    return placement


def ranked_first(relays: list[RelayProcess]) -> Placement:
    """Where the clients' rendezvous hashing puts a room: the first live relay."""

    async def placement(room: bytes) -> str:
        alive = {r.url: r.name for r in relays if r.serving}
        return alive[next(url for url in rank_relays([r.url for r in relays], room)
                          if url in alive)]

    return placement


@pytest.mark.parametrize("fail", [RelayProcess.kill, RelayProcess.hang, RelayProcess.stop],
                         ids=["killed", "hung", "stopped"])
async def test_behind_haproxy_a_failed_instance_moves_only_its_rooms(
    tmp_path: Path, fail: Failure
) -> None:
    needs_haproxy()
    async with relay_processes(tmp_path / "relays", INSTANCES, *BEHIND_PROXY) as relays, \
            run_haproxy(documented_config(), servers(relays)) as proxy:
        await instance_fails_and_only_its_rooms_move(
            tmp_path / "devices", relays, [proxy.url], probe_through(proxy, relays), fail)


async def test_client_side_hashing_a_killed_relay_moves_only_its_rooms(tmp_path: Path) -> None:
    async with relay_processes(tmp_path / "relays", INSTANCES) as relays:
        await instance_fails_and_only_its_rooms_move(
            tmp_path / "devices", relays, [r.url for r in relays], ranked_first(relays))


# --------------------------------------------------------------------------- the real programs


async def test_devices_pair_and_sync_through_haproxy_and_survive_their_instance(
    tmp_path: Path,
) -> None:
    """``mirror pair``/``join``/``serve`` processes with only the proxy's URL: they
    pair and sync through it; when the instance holding their room is killed
    they resume on another and a reflection written after that arrives."""
    needs_haproxy()
    a, b = tmp_path / "laptop", tmp_path / "phone"
    async with relay_processes(tmp_path / "relays", INSTANCES, *BEHIND_PROXY) as relays, \
            run_haproxy(documented_config(), servers(relays)) as proxy:
        serving: list[MirrorProcess] = []
        try:
            await pair_and_serve_through_relay(a, b, proxy.url, "phone", serving)
            status, _, err = await mirror(a, "reflect", "written before the kill")
            assert status == 0, err
            await wait_for(lambda: has(b, "written before the kill"), deadline_s=40)

            async def holders() -> list[RelayProcess]:
                return [r for r in relays if r.serving and await r.rooms() > 0]

            await wait_for(lambda: connected_through_relay(b), deadline_s=20)
            holding = await holders()
            assert len(holding) == 1, "their one pair room is on one instance"
            await holding[0].kill()
            status, _, err = await mirror(a, "reflect", "written after the kill")
            assert status == 0, err
            await wait_for(lambda: has(b, "written after the kill"), deadline_s=40)
            moved_to = await holders()
            assert len(moved_to) == 1 and moved_to[0] is not holding[0]
            await wait_for(lambda: connected_through_relay(b), deadline_s=20)
        finally:
            for proc in serving:
                assert await stop_mirror(proc) == 0


async def connected_through_relay(home: Path) -> bool:
    status, out, _ = await mirror(home, "sync", "status", "--json")
    assert status == 0
    peers = json.loads(out)["peers"]
    return any(p["connected"] and str(p["address"]).startswith("relay:") for p in peers)


# --------------------------------------------------------------------------- an instance comes back


async def instance_returns_and_a_lone_waiter_finds_its_peer(
    tmp_path: Path, relays: RelayFleet, device_relays: list[str], placement: Placement,
    back_in_service: Callable[[RelayProcess], Awaitable[None]],
) -> None:
    """The laptop waits alone on the room's fallback instance while the room's own
    instance is down; the instance comes back (a restart, a rolling upgrade), and
    then the phone arrives, at the room's own instance again. They must meet."""
    write_seeded_keyrings(tmp_path, DEVICES[:2], seed=19)
    async with open_devices(tmp_path, DEVICES[:2]) as devices:
        laptop, phone = links_of(devices, device_relays)
        laptop.rejoin_alone_after_s = REJOIN_FOR_TEST_S
        owner_name = await placement(laptop.room)
        owner = next(r for r in relays if r.name == owner_name)
        await owner.kill()
        await devices[0].journal.add("from the laptop, waiting alone")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(laptop.run)

            async def waiting_on_a_fallback() -> bool:
                return sum([await r.rooms() for r in relays if r.serving]) == 1

            await wait_for(waiting_on_a_fallback, deadline_s=RESUME_DEADLINE_S)
            await back_in_service(await relays.restart(owner))
            assert await placement(laptop.room) == owner_name, "the room is home again"
            nursery.start_soon(phone.run)
            await wait_for(lambda: has_text(devices[1], "from the laptop, waiting alone"),
                           deadline_s=RESUME_DEADLINE_S)
            nursery.cancel_scope.cancel()
        assert laptop.stats.connects >= 2, "the laptop moved back to the room's instance"


async def has_text(device: Device, text: str) -> bool:
    return text in await texts(device)


async def test_behind_haproxy_a_lone_device_returns_with_its_instance(tmp_path: Path) -> None:
    needs_haproxy()
    async with relay_processes(tmp_path / "relays", INSTANCES, *BEHIND_PROXY) as relays, \
            run_haproxy(documented_config(), servers(relays)) as proxy:

        async def back_in_service(relay: RelayProcess) -> None:
            await proxy.wait_for_state(relay.name, "UP")

        await instance_returns_and_a_lone_waiter_finds_its_peer(
            tmp_path / "devices", relays, [proxy.url], probe_through(proxy, relays),
            back_in_service)


async def test_client_side_hashing_a_lone_device_returns_with_its_relay(
    tmp_path: Path,
) -> None:
    async with relay_processes(tmp_path / "relays", INSTANCES) as relays:

        async def back_in_service(relay: RelayProcess) -> None:
            await trio.lowlevel.checkpoint()  # listening once started

        await instance_returns_and_a_lone_waiter_finds_its_peer(
            tmp_path / "devices", relays, [r.url for r in relays], ranked_first(relays),
            back_in_service)


async def test_only_a_connection_alone_in_its_room_is_reopened(tmp_path: Path) -> None:
    """Rejoining costs a device in session nothing: while a lone device's
    connection is reopened again and again, a pair in session keeps its one."""
    write_seeded_keyrings(tmp_path, DEVICES[:3], seed=7)
    async with relay_processes(tmp_path / "relays", INSTANCES[:1]) as relays, \
            open_devices(tmp_path, DEVICES[:3]) as (laptop, phone, tablet):
        urls = [relays[0].url]
        pair = links_of([laptop, phone], urls)
        lone = links_of([laptop, tablet], urls)[0]  # the tablet never comes
        for link in [*pair, lone]:
            link.rejoin_alone_after_s = REJOIN_FOR_TEST_S / 4
        async with trio.open_nursery() as nursery:
            for link in pair:
                nursery.start_soon(link.run)
            await wait_for(lambda: all(link.in_session() for link in pair))
            in_session = [(link.stats.connects, len(link.sessions)) for link in pair]
            nursery.start_soon(lone.run)
            await wait_for(lambda: lone.stats.connects >= 4, deadline_s=RESUME_DEADLINE_S)
            assert [(link.stats.connects, len(link.sessions)) for link in pair] == in_session
            assert all(link.in_session() for link in pair)
            nursery.cancel_scope.cancel()
