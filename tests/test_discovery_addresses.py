"""A device reachable at several addresses (LAN and VPN, Wi-Fi and Ethernet, a
stale one): discovery reports all of them, best first and capped, and the
dialer moves on from one that does not answer and remembers the one that did.

Loopback only: 127.0.0.0/8 and ::1. A "dead" address is a port on 127.0.0.2
held by a bound socket that does not listen, so a connect there is refused.
Every wait is on a condition, under a deadline.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from zeroconf import ServiceInfo

from node.discovery.lan import (
    MAX_PEER_ADDRESSES,
    SERVICE_TYPE,
    PeerAddress,
    open_discovery,
    order_addresses,
)
from node.discovery.zeroconf_bridge import _peer_addresses
from node.sync import dialing
from node.sync.dialing import connect_first
from node.sync.limits import CONNECT_TIMEOUT_S, MAX_DIAL_ADDRESSES, NEXT_ADDRESS_DELAY_S
from node.sync.runner import dial_discovered
from node.sync.service import SyncService
from tests.sync_helpers import Device, has, open_devices, wait_for
from tests.test_discovery import LOOPBACK, free_port, new_group

WAIT_S = 20


def info_with(addresses: list[str]) -> ServiceInfo:
    label = secrets.token_hex(4)
    return ServiceInfo(
        SERVICE_TYPE,
        f"{label}.{SERVICE_TYPE}",
        port=4000,
        properties={},
        server=f"{label}.local.",
        parsed_addresses=addresses,
    )


def service_for(device: Device, host: str) -> SyncService:
    # The service needs the core's store and home only.
    core = SimpleNamespace(store=device.store, home=SimpleNamespace(path=device.path))
    return SyncService(core, device.group, listen=(host, 0))  # type: ignore[arg-type]


@asynccontextmanager
async def running(service: SyncService) -> AsyncIterator[SyncService]:
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        yield service
        nursery.cancel_scope.cancel()


@contextmanager
def refused_at(host: str, port: int) -> Iterator[None]:
    """Hold *host*:*port* without listening: a connect there is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind((host, port))
        yield


# --- what discovery reports, no network ----------------------------------------


def test_a_service_info_with_several_addresses_yields_all_of_them_capped() -> None:
    several = ["192.168.1.20", "100.64.0.7", "10.8.0.5", "fd00::20"]
    assert sorted(_peer_addresses(info_with(several), [])) == sorted(several)

    hostile = [f"10.{i // 200}.{i % 200}.1" for i in range(300)]
    kept = _peer_addresses(info_with(hostile), [])
    assert len(kept) == MAX_PEER_ADDRESSES
    assert set(kept) <= set(hostile)
    # The cap holds even when all of them are on our own subnet.
    assert len(_peer_addresses(info_with(hostile), [ipaddress.ip_network("10.0.0.0/8")])) == 8


def test_addresses_on_our_subnets_come_first_and_undiallable_ones_go() -> None:
    lan, vpn = "192.168.1.20", "100.64.0.7"
    advertised = [vpn, "0.0.0.0", "224.0.0.251", "fe80::1", "not an ip", lan, "fd00::20", lan]
    v4_lan = [ipaddress.ip_network("192.168.1.0/24")]
    assert order_addresses(advertised, v4_lan) == (lan, vpn, "fd00::20")
    both_lans = [*v4_lan, ipaddress.ip_network("fd00::/64")]
    assert order_addresses(advertised, both_lans) == (lan, "fd00::20", vpn)
    assert order_addresses(advertised, []) == (vpn, lan, "fd00::20")  # v4 first, else as given
    assert order_addresses(["fe80::1", "::"], []) == ()


def test_a_peer_address_holds_one_to_the_cap_addresses() -> None:
    peer = PeerAddress(("10.0.0.2", "100.64.0.7"), 4000, None)
    assert peer.host == "10.0.0.2"
    assert peer.candidates() == [("10.0.0.2", 4000), ("100.64.0.7", 4000)]
    for wrong in ((), tuple(f"10.0.0.{i}" for i in range(MAX_PEER_ADDRESSES + 1))):
        with pytest.raises(ValueError, match="addresses"):
            PeerAddress(wrong, 4000, None)


# --- over zeroconf on loopback ----------------------------------------------------


async def test_every_advertised_address_arrives_over_mdns() -> None:
    group = new_group()
    port = free_port()
    advertised = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "::1"]
    async with (
        open_discovery(
            interfaces=LOOPBACK, port=port, tag_for_hour=group, clock=time.time,
            addresses=advertised,
        ),
        open_discovery(
            interfaces=LOOPBACK, port=free_port(), tag_for_hour=group, clock=time.time
        ) as browser,
    ):
        with trio.fail_after(WAIT_S):
            peer = await browser.wait_peer(lambda p: p.port == port)
    assert sorted(peer.addresses) == sorted(advertised)
    assert peer.addresses[-1] == "::1"  # all on our (loopback) subnets: IPv4 first


async def test_a_dead_first_address_does_not_keep_discovered_devices_apart(
    tmp_path: Path,
) -> None:
    """b advertises 127.0.0.2 (refused) and ::1 (where it listens). Both are on
    a loopback subnet, so IPv4 is ranked first: a dials the dead one first, in
    whatever order mDNS delivered them, and must move on to the second."""
    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        tags = new_group()
        b_id = b.keyring.device_id
        await a.journal.add("across the second address")
        async with running(service_for(b, "::1")) as on_b, running(
            service_for(a, "127.0.0.1")
        ) as on_a:
            dead = "127.0.0.2"
            with refused_at(dead, on_b.port):
                async with (
                    open_discovery(
                        interfaces=LOOPBACK, port=on_b.port, tag_for_hour=tags,
                        clock=time.time, addresses=[dead, "::1"],
                    ),
                    open_discovery(
                        interfaces=LOOPBACK, port=on_a.port, tag_for_hour=tags,
                        clock=time.time,
                    ) as disc_a,
                    trio.open_nursery() as nursery,
                ):
                    nursery.start_soon(dial_discovered, on_a, disc_a)
                    with trio.fail_after(WAIT_S):
                        peer = await disc_a.wait_peer(lambda p: p.port == on_b.port)
                    assert peer.addresses == (dead, "::1")
                    await wait_for(lambda: b_id in on_a.sessions, deadline_s=WAIT_S)
                    await wait_for(has(b, "across the second address"), deadline_s=WAIT_S)
                    assert on_a.stats.peers[b_id].address == f"::1:{on_b.port}"
                    nursery.cancel_scope.cancel()


# --- the dialer ---------------------------------------------------------------------


async def test_the_dialer_moves_on_from_a_refused_address_and_remembers_the_one_that_worked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[tuple[str, int]] = []
    real_open = dialing._open

    async def recording_open(address: tuple[str, int]) -> trio.SocketStream:
        attempts.append(address)
        return await real_open(address)

    monkeypatch.setattr(dialing, "_open", recording_open)
    async with open_devices(tmp_path, ["a", "b"]) as (a, b):
        b_id = b.keyring.device_id
        async with running(service_for(b, "127.0.0.1")) as on_b, running(
            service_for(a, "127.0.0.1")
        ) as on_a:
            dead, real = ("127.0.0.2", on_b.port), ("127.0.0.1", on_b.port)
            with refused_at(*dead):
                on_a.dial(dead, real)
                await wait_for(lambda: b_id in on_a.sessions, deadline_s=WAIT_S)
                assert attempts == [dead, real]
                on_a.sessions[b_id].close_soon("the test ends this session")
                await wait_for(
                    lambda: on_a.stats.sessions_total >= 2 and b_id in on_a.sessions,
                    deadline_s=WAIT_S,
                )
                assert attempts[:3] == [dead, real, real]  # the one that answered, first


class _Connected:
    """Stands in for a stream in connect_first tests without sockets."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address


async def test_an_address_that_never_answers_costs_a_short_delay_not_the_timeout(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    black_hole, good = ("10.9.9.9", 1), ("10.0.0.2", 1)
    cancelled: list[tuple[str, int]] = []

    async def fake_open(address: tuple[str, int]) -> Any:
        if address == good:
            return _Connected(address)
        try:
            await trio.sleep_forever()
        finally:
            cancelled.append(address)

    monkeypatch.setattr(dialing, "_open", fake_open)
    started = trio.current_time()
    with trio.fail_after(CONNECT_TIMEOUT_S):
        stream, index = await connect_first([black_hole, good])
    assert index == 1 and stream.address == good  # type: ignore[attr-defined]
    assert trio.current_time() - started == pytest.approx(NEXT_ADDRESS_DELAY_S)
    assert cancelled == [black_hole]  # given up once the other answered


async def test_the_dialer_tries_at_most_the_cap_and_reports_when_all_fail(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tried: list[tuple[str, int]] = []

    async def refusing_open(address: tuple[str, int]) -> trio.SocketStream:
        tried.append(address)
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(dialing, "_open", refusing_open)
    many = [(f"10.0.{i // 200}.{i % 200}", 1) for i in range(300)]
    with pytest.raises(OSError, match="could not connect"):
        await connect_first(many)
    assert tried == many[:MAX_DIAL_ADDRESSES]
