"""Discovery over real zeroconf, bound to 127.0.0.1 or to network namespaces that
the test creates; nothing multicasts on the machine's real interfaces.

Other test runs on this machine may advertise ``_mirror._tcp`` on loopback at
the same time: every group here uses a fresh random secret, and assertions
look only at our own ports and names.
"""

from __future__ import annotations

import hashlib
import secrets
import select
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
from zeroconf import DNSIncoming, DNSPointer, DNSService, DNSText

from node.discovery.lan import (
    Advertisement,
    Discovery,
    DiscoveryError,
    PairingNotFound,
    PeerFound,
    PeerLost,
    advertise_pairing,
    find_pairing,
    hour_of,
    match_tag,
    open_discovery,
    seconds_until_next_hour,
)
from node.discovery.tags import SECONDS_PER_HOUR
from tests.netns_helper import netns_unavailable, python_env, veth_namespace_pair

LOOPBACK = ["127.0.0.1"]
WAIT_S = 10


def group_tags(secret: bytes) -> Callable[[int], bytes]:
    def tag_for_hour(hour: int) -> bytes:
        return hashlib.blake2b(hour.to_bytes(8, "big"), key=secret, digest_size=16).digest()

    return tag_for_hour


def new_group() -> Callable[[int], bytes]:
    return group_tags(secrets.token_bytes(32))


def shifted_clock(seconds_to_boundary: float, hours: int = 0) -> Callable[[], float]:
    """Real elapsed time, but the next hour boundary comes after the given seconds."""
    base_hour = hour_of(time.time())
    offset = (base_hour + 1) * SECONDS_PER_HOUR - seconds_to_boundary - time.monotonic()
    offset += hours * SECONDS_PER_HOUR
    return lambda: offset + time.monotonic()


def free_port() -> int:
    # Only used as an advertised number; nothing listens on it.
    return 20000 + secrets.randbelow(40000)


async def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Poll a condition that has no event to wait on, under a deadline."""
    with trio.fail_after(timeout_s):
        while not condition():  # noqa: ASYNC110 - statistics have no event to wait on
            await trio.sleep(0.02)


@asynccontextmanager
async def node(
    tag_for_hour: Callable[[int], bytes],
    *,
    clock: Callable[[], float] = time.time,
    port: int | None = None,
) -> AsyncIterator[Discovery]:
    async with open_discovery(
        interfaces=LOOPBACK,
        port=port if port is not None else free_port(),
        tag_for_hour=tag_for_hour,
        clock=clock,
    ) as disc:
        yield disc


def own_port(disc: Discovery) -> int:
    adv = disc.advertisement()
    assert adv is not None
    return adv.port


def peer_ports(disc: Discovery) -> set[int]:
    return {p.port for p in disc.peers()}


# --- matching logic, no network ----------------------------------------------


def test_match_tag_accepts_one_hour_of_skew_either_way() -> None:
    tags = new_group()
    now = 1_700_000_000.0
    hour = hour_of(now)
    assert match_tag(tags(hour), now, tags) == hour
    assert match_tag(tags(hour - 1), now, tags) == hour - 1
    assert match_tag(tags(hour + 1), now, tags) == hour + 1
    assert match_tag(tags(hour - 2), now, tags) is None
    assert match_tag(tags(hour + 2), now, tags) is None
    assert match_tag(new_group()(hour), now, tags) is None
    assert match_tag(b"", now, tags) is None


def test_hour_boundaries() -> None:
    assert hour_of(3599.999) == 0
    assert hour_of(3600.0) == 1
    assert seconds_until_next_hour(3600.0) == SECONDS_PER_HOUR
    assert seconds_until_next_hour(7199.5) == pytest.approx(0.5)


def test_a_tag_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(DiscoveryError, match="1 to 64 bytes"):
        trio.run(partial(find_pairing, LOOPBACK, b"", timeout_s=0.1))


# --- loopback -----------------------------------------------------------------


async def test_same_group_finds_each_other_and_another_group_is_not_reported() -> None:
    group, other = new_group(), new_group()
    async with node(other) as c, node(other) as d:
        with trio.fail_after(WAIT_S):
            await c.wait_peer()  # c is resolvable on the wire from here on
        async with node(group) as a, node(group) as b:
            with a.subscribe() as a_events:
                with trio.fail_after(WAIT_S):
                    found_b = await a.wait_peer()
                    found_a = await b.wait_peer()
                    # a and b have resolved and turned down c and d (others may be about)
                    await wait_until(lambda: a.statistics().services_rejected >= 2)
                    await wait_until(lambda: b.statistics().services_rejected >= 2)
                events = []
                while True:
                    try:
                        events.append(a_events.receive_nowait())
                    except trio.WouldBlock:
                        break
            assert events == [PeerFound(found_b)]
            assert (found_a.host, found_a.port) == ("127.0.0.1", own_port(a))
            assert (found_b.host, found_b.port) == ("127.0.0.1", own_port(b))
            assert found_a.tag_hour == hour_of(time.time())
            assert peer_ports(a) == {own_port(b)}
            assert peer_ports(b) == {own_port(a)}
            assert own_port(a) not in peer_ports(c) | peer_ports(d)
            assert peer_ports(c) == {own_port(d)}
            stats = a.statistics()
            assert stats.peers == 1 and stats.registrations == 1 and stats.events_dropped == 0


async def test_a_departing_peer_is_reported_lost() -> None:
    group = new_group()
    async with node(group) as a:
        with a.subscribe() as events:
            async with node(group) as b:
                with trio.fail_after(WAIT_S):
                    peer = await a.wait_peer()
                assert peer.port == own_port(b)
            with trio.fail_after(WAIT_S):
                assert await events.receive() == PeerFound(peer)
                assert await events.receive() == PeerLost(peer)
            assert a.peers() == []


async def test_the_tag_rotates_at_the_hour_and_peers_follow() -> None:
    group = new_group()
    clock = shifted_clock(seconds_to_boundary=1.5)
    start_hour = hour_of(clock())
    async with node(group, clock=clock) as a, node(group, clock=clock) as b:
        first = a.advertisement()
        assert first is not None and first.tag_hour == start_hour
        assert first.properties["tag"] == group(start_hour).hex()
        with trio.fail_after(WAIT_S):
            await a.wait_peer(lambda p: p.tag_hour == start_hour + 1)
            # b's old instance withdrew and a itself moved on to the new tag
            await wait_until(lambda: [p.tag_hour for p in a.peers()] == [start_hour + 1])
            await wait_until(lambda: a.statistics().advertised_tag_hour == start_hour + 1)
        second = a.advertisement()
        assert second is not None and second.tag_hour == start_hour + 1
        assert second.properties["tag"] == group(start_hour + 1).hex()
        assert second.instance_name != first.instance_name
        assert [p.port for p in a.peers()] == [own_port(b)]
        assert a.statistics().registrations == 2


async def test_one_hour_of_skew_is_tolerated_and_two_are_not() -> None:
    group = new_group()
    now = shifted_clock(seconds_to_boundary=1000)
    ahead = shifted_clock(seconds_to_boundary=1000, hours=1)
    behind = shifted_clock(seconds_to_boundary=1000, hours=-2)
    async with (
        node(group, clock=behind) as stale,
        node(group, clock=now) as a,
        node(group, clock=ahead) as b,
    ):
        with trio.fail_after(WAIT_S):
            from_a = await a.wait_peer()
            from_b = await b.wait_peer()
            await wait_until(lambda: a.statistics().services_rejected >= 1)
        assert from_a.tag_hour == hour_of(now()) + 1
        assert from_b.tag_hour == hour_of(now())
        assert own_port(stale) not in peer_ports(a)
        assert own_port(b) in peer_ports(a) and own_port(a) in peer_ports(b)


async def test_pairing_advertisement_is_found_by_its_tag_only() -> None:
    pairing_tag = secrets.token_bytes(16)
    port = free_port()
    async with advertise_pairing(interfaces=LOOPBACK, port=port, pairing_tag=pairing_tag) as adv:
        assert adv.properties["pairing"] == pairing_tag.hex()
        found = await find_pairing(LOOPBACK, pairing_tag, timeout_s=WAIT_S)
        assert (found.host, found.port, found.tag_hour) == ("127.0.0.1", port, None)
        started = time.monotonic()
        with pytest.raises(PairingNotFound, match=r"no pairing device answered within 0\.5 s"):
            await find_pairing(LOOPBACK, secrets.token_bytes(16), timeout_s=0.5)
        assert time.monotonic() - started < 0.5 + 5  # the timeout plus a bounded close


async def test_a_group_browser_ignores_pairing_advertisements() -> None:
    pairing_tag = secrets.token_bytes(16)
    async with (
        advertise_pairing(interfaces=LOOPBACK, port=free_port(), pairing_tag=pairing_tag),
        node(new_group()) as a,
    ):
        await wait_until(lambda: a.statistics().services_rejected >= 1)
        assert a.peers() == []


async def test_closing_is_prompt_when_cancelled() -> None:
    with trio.CancelScope() as scope:
        async with node(new_group()):
            scope.cancel()
            started = time.monotonic()
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert time.monotonic() - started < 5


async def test_a_bad_interface_is_one_line_discovery_error() -> None:
    with pytest.raises(DiscoveryError) as info:
        async with open_discovery(
            interfaces=["not-an-address"], port=1, tag_for_hour=new_group(), clock=time.time
        ):
            pass
    assert "\n" not in str(info.value)


async def test_an_error_in_the_block_comes_out_as_itself() -> None:
    with pytest.raises(KeyError):
        async with node(new_group()):
            raise KeyError("mine")


# --- privacy ------------------------------------------------------------------

MDNS_GROUP = "224.0.0.251"


def _loopback_mdns_listener() -> socket.socket:
    """Receives mDNS on loopback only; it never sends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((MDNS_GROUP, 5353))
    mreq = socket.inet_aton(MDNS_GROUP) + socket.inet_aton("127.0.0.1")
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    sock.setblocking(False)
    return sock


def _record_texts(packet: bytes) -> list[str]:
    """Every name and string the packet's records carry, lower-cased."""
    incoming = DNSIncoming(packet)
    texts: list[str] = []
    for record in [*incoming.answers(), *incoming.questions]:
        texts.append(record.name.lower())
        if isinstance(record, DNSPointer):
            texts.append(record.alias.lower())
        elif isinstance(record, DNSService):
            texts.append(record.server.lower())
        elif isinstance(record, DNSText):
            texts.append(record.text.decode("utf-8", "replace").lower())
    return texts


async def test_advertised_records_carry_no_name_and_no_stable_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_hostname = socket.gethostname().lower()
    canary = "canary-laptop-of-alice"
    monkeypatch.setattr(socket, "gethostname", lambda: canary)
    group = new_group()
    port = free_port()
    this_hour = shifted_clock(seconds_to_boundary=1000)
    next_hour = shifted_clock(seconds_to_boundary=1000, hours=1)
    packets: list[bytes] = []
    ads: list[Advertisement] = []
    with _loopback_mdns_listener() as raw:
        listener = trio.socket.from_stdlib_socket(raw)

        async def capture() -> None:
            while True:
                packets.append(await listener.recv(9000))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(capture)
            # The same device (same group, same port) in two different hours.
            for clock in (this_hour, next_hour):
                async with node(group, clock=clock, port=port) as disc:
                    adv = disc.advertisement()
                    assert adv is not None
                    ads.append(adv)
            # Names travel as DNS labels: look for the label itself.
            await wait_until(
                lambda: all(
                    any(ad.instance_name.split(".")[0].encode() in p for p in packets) for ad in ads
                )
            )
            nursery.cancel_scope.cancel()

    labels = [ad.instance_name.split(".")[0] for ad in ads]
    ours = [p for p in packets if any(label.encode() in p for label in labels)]
    assert ours
    for packet in ours:
        for text in _record_texts(packet):
            assert canary not in text
            assert real_hostname not in text.replace("._mirror._tcp.local", "")
    first, second = ads
    assert set(first.properties) == set(second.properties) == {"v", "tag"}
    identifiers = [
        (ad.instance_name.split(".")[0], ad.server.split(".")[0], ad.properties["tag"])
        for ad in ads
    ]
    for mine in identifiers[0]:
        for theirs in identifiers[1]:
            assert mine not in theirs and theirs not in mine


# --- two network namespaces ----------------------------------------------------

NAMESPACE_NODE = """
import hashlib, sys, time, trio
from node.discovery.lan import open_discovery

address, port = sys.argv[1], int(sys.argv[2])
secret = bytes.fromhex(sys.argv[3])

def tag_for_hour(hour):
    return hashlib.blake2b(hour.to_bytes(8, "big"), key=secret, digest_size=16).digest()

async def main():
    async with open_discovery(
        interfaces=[address], port=port, tag_for_hour=tag_for_hour, clock=time.time
    ) as disc:
        with trio.fail_after(20):
            peer = await disc.wait_peer()
        print("found", peer.host, peer.port, flush=True)
        with trio.move_on_after(20):  # stay visible until the test is done
            await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)

trio.run(main)
"""


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    remaining = deadline - time.monotonic()
    ready, _, _ = select.select([proc.stdout], [], [], max(remaining, 0))
    if not ready:
        raise AssertionError("no answer from the namespace node before the deadline")
    return proc.stdout.readline().strip()


def test_two_namespaces_find_each_other_over_a_veth_pair() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"network namespaces unavailable: {reason}")
    secret = secrets.token_hex(32)
    with veth_namespace_pair() as pair:
        procs: list[subprocess.Popen[str]] = []
        try:
            for ns, port in ((pair.a, 47001), (pair.b, 47002)):
                procs.append(
                    subprocess.Popen(
                        ns.python("-c", NAMESPACE_NODE, ns.address, str(port), secret),
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                        env=python_env(),
                    )
                )
            deadline = time.monotonic() + 20
            line_a = _read_line(procs[0], deadline)
            line_b = _read_line(procs[1], deadline)
            assert line_a == f"found {pair.b.address} 47002", procs[0].stderr
            assert line_b == f"found {pair.a.address} 47001", procs[1].stderr
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.close()
            for proc in procs:
                assert proc.wait(timeout=10) == 0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=5)
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()


def test_namespace_helper_leaves_nothing_behind() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(f"network namespaces unavailable: {reason}")
    with veth_namespace_pair() as pair:
        names = {pair.a.name, pair.b.name}
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    assert not any(name in listed for name in names)


def test_a_peer_on_an_earlier_epoch_is_recognised_with_that_epoch() -> None:
    from node.discovery.tags import match_any

    def current(hour: int) -> bytes:
        return b"now-" + hour.to_bytes(12, "big")

    def earlier(hour: int) -> list[tuple[int, bytes]]:
        return [(0, b"old-" + hour.to_bytes(12, "big"))]

    now = 1_800_000_000.0
    hour = int(now // 3600)
    assert match_any(current(hour), now, current, earlier).epoch is None  # type: ignore[union-attr]
    found = match_any(b"old-" + hour.to_bytes(12, "big"), now, current, earlier)
    assert found is not None and found.epoch == 0 and found.tag_hour == hour
    assert match_any(b"old-" + hour.to_bytes(12, "big"), now, current, None) is None
    assert match_any(b"x" * 16, now, current, earlier) is None
