"""A device reachable at several addresses (LAN and VPN, Wi-Fi and Ethernet, a
stale one): discovery reports all of them, best first and capped.

Loopback only: 127.0.0.0/8 and ::1. Every wait is on a condition, under a deadline.
"""

from __future__ import annotations

import ipaddress
import secrets
import time

import pytest
import trio
from zeroconf import ServiceInfo

from node.discovery import (
    MAX_PEER_ADDRESSES,
    SERVICE_TYPE,
    PeerAddress,
    open_discovery,
    order_addresses,
)
from node.discovery_zeroconf import _peer_addresses
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
