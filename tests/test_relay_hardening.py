"""Issue 15 item 8: the relay's lower-severity holes, each attack run against it.

- per-address limits counted IPv6 clients per full address (a /64 defeats them);
- pings were never rate-limited (20,000 answered);
- a few flooding connections could take the relay's time from every other room;
- the 8 KiB head limit applied only to heads still incomplete;
- HTTP/2 (h2c upgrade, prior knowledge) was served though undocumented.

The IPv6 and byte-budget attacks run through the ASGI interface with made-up
client addresses and the virtual clock; the others against the real server on
127.0.0.1. The quiet room's latency under a flood is measured by
``bench/relay.py --flood-pairs 8`` (docs/benchmarks.md), not here.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
import trio
import trio.testing
from wsproto.events import CloseConnection, Pong

from relay import RelayApp, RelayCloseCode, RelayLimits
from relay.admission import address_key
from relay.limits import MESSAGE_COST_BYTES
from tests.relay_attack_helpers import RawClient, running_relay
from tests.sync_helpers import wait_for

ROOM = "ab" * 32
ROOM_PATH = "/v1/rooms/" + ROOM


# --------------------------------------------------------------------------- helpers


class AsgiClient:
    """One WebSocket connection as the server presents it to the app, from *address*."""

    def __init__(self, app: RelayApp, nursery: trio.Nursery, address: str,
                 room: str = ROOM) -> None:
        # Like hypercorn's queue for the app: a client that sends more waits.
        self.to_app, self._from_client = trio.open_memory_channel[dict[str, Any]](8)
        self.sent: list[dict[str, Any]] = []
        self.to_app.send_nowait({"type": "websocket.connect"})
        scope = {"type": "websocket", "path": "/v1/rooms/" + room, "client": (address, 40000),
                 "http_version": "1.1", "raw_path": ("/v1/rooms/" + room).encode(),
                 "headers": []}
        nursery.start_soon(app, scope, self._from_client.receive, self.send)

    async def send(self, message: dict[str, Any]) -> None:
        await trio.lowlevel.checkpoint()
        self.sent.append(message)

    def closed_with(self) -> int | None:
        return next((m["code"] for m in self.sent if m["type"] == "websocket.close"), None)

    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if "text" in m]


@asynccontextmanager
async def asgi_relay(limits: RelayLimits) -> AsyncIterator[
        tuple[RelayApp, Callable[..., AsgiClient]]]:
    app = RelayApp(limits)
    with trio.fail_after(3600):  # virtual seconds
        async with trio.open_nursery() as nursery:
            yield app, lambda address, room=ROOM: AsgiClient(app, nursery, address, room)
            nursery.cancel_scope.cancel()


async def exchange(port: int, data: bytes) -> bytes:
    """Send *data* in one write and read the answer until the relay hangs up (bounded)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = b""
    with trio.move_on_after(5):
        await stream.send_all(data)
        while len(answer) < 65536:
            try:
                chunk = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                break
            if not chunk:
                break
            answer += chunk
            if answer.startswith(b"HTTP/1.1 101"):
                break
    await stream.aclose()
    return answer


# --------------------------------------------------------------------------- IPv6 by /64


def test_address_keys_group_ipv6_by_64_and_leave_ipv4_alone() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert address_key("2001:DB8:1:2::5") == "2001:db8:1:2::/64"  # one spelling
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"  # IPv4-mapped: the IPv4 address
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.8") == "192.0.2.8"  # IPv4 stays per address
    assert address_key("not an address") == "not an address"


async def test_one_ipv6_64_gets_the_per_address_limit_and_no_more(autojump_clock: Any) -> None:
    limits = RelayLimits(max_connections_per_address=32)
    async with asgi_relay(limits) as (app, connect):
        clients = [connect(f"2001:db8:0:1::{i:x}", room=f"{i:064x}") for i in range(1, 33)]
        await wait_for(lambda: app.statistics().connections == 32, 60)
        more = connect("2001:db8:0:1:ffff::99", room="ff" * 32)  # same /64, new address
        await wait_for(lambda: more.closed_with() is not None, 60)
        assert more.closed_with() == RelayCloseCode.TOO_MANY_FROM_ADDRESS
        other = connect("2001:db8:0:2::1", room="ee" * 32)  # the next /64: its own limit
        await wait_for(lambda: other.texts() == ["present 0"], 60)
        v4 = [connect(f"192.0.2.{i}", room=f"{i + 100:064x}") for i in range(1, 3)]
        await wait_for(lambda: all(c.texts() == ["present 0"] for c in v4), 60)
        assert all(c.closed_with() is None for c in clients)
        assert app.statistics().drops == {"too_many_from_address": 1}


# --------------------------------------------------------------------------- the byte budget


async def test_a_flooding_connection_is_held_to_its_byte_budget(autojump_clock: Any) -> None:
    limits = RelayLimits(max_bytes_per_s=1024 * 1024, byte_burst=2 * 1024 * 1024,
                         max_frames_per_s=1e6, frame_burst=1_000_000)
    async with asgi_relay(limits) as (app, connect):
        a, b = connect("192.0.2.1"), connect("192.0.2.2")
        await wait_for(lambda: app.statistics().connections == 2, 60)
        message = os.urandom(64 * 1024)
        cost = len(message) + MESSAGE_COST_BYTES
        # Within the burst nothing waits: a device catching up is not slowed.
        start = trio.current_time()
        for _ in range(limits.byte_burst // cost):
            await a.to_app.send({"type": "websocket.receive", "bytes": message})
        await trio.testing.wait_all_tasks_blocked()
        assert app.statistics().frames_in == limits.byte_burst // cost
        assert trio.current_time() == start and app.statistics().throttled == 0
        # Flooding on: the relay reads it at the budget's rate, and closes nothing.
        flood_seconds = 20.0

        async def flood() -> None:
            while True:
                await a.to_app.send({"type": "websocket.receive", "bytes": message})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            await trio.sleep(flood_seconds)
            nursery.cancel_scope.cancel()
        stats = app.statistics()
        budget = limits.byte_burst + limits.max_bytes_per_s * flood_seconds
        assert stats.frames_in * cost <= budget + cost
        assert stats.frames_in * cost >= budget - 2 * cost, "the budget is a rate, not a wall"
        assert stats.throttled > 0 and stats.drops == {}
        assert a.closed_with() is None and b.closed_with() is None


async def test_the_byte_budget_counts_each_message_s_cost(autojump_clock: Any) -> None:
    """Empty and tiny messages cost the relay time too: a flood of them is paced."""
    limits = RelayLimits(max_bytes_per_s=100 * MESSAGE_COST_BYTES,
                         byte_burst=RelayLimits().max_frame_bytes + MESSAGE_COST_BYTES,
                         max_frames_per_s=1e6, frame_burst=1_000_000)
    async with asgi_relay(limits) as (app, connect):
        a = connect("192.0.2.1")
        await wait_for(lambda: app.statistics().connections == 1, 60)

        async def flood() -> None:
            while True:
                await a.to_app.send({"type": "websocket.receive", "bytes": b""})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(flood)
            await trio.sleep(10.0)
            nursery.cancel_scope.cancel()
        frames = app.statistics().frames_in
        assert frames <= limits.byte_burst / MESSAGE_COST_BYTES + 100 * 10 + 1


# --------------------------------------------------------------------------- pings


async def test_a_ping_flood_is_answered_up_to_the_burst_then_closed() -> None:
    limits = RelayLimits(max_pings_per_s=1.0, ping_burst=16)
    async with running_relay(limits) as (app, host, port):
        client = await RawClient.connect(host, port, ROOM_PATH, rcvbuf=1 << 20)
        for _ in range(2_000):  # bounded; the attack sent 20,000
            try:
                await client.ping(b"p")
            except OSError:
                break  # the relay hung up
        pongs = 0
        close: CloseConnection | None = None
        with trio.fail_after(10):
            while close is None:
                data = await client.sock.recv(65536)
                if not data:
                    break
                client.ws.receive_data(data)
                for event in client.ws.events():
                    if isinstance(event, Pong):
                        pongs += 1
                    elif isinstance(event, CloseConnection):
                        close = event
        client.reset()
        # The pings took seconds at most: the burst, and perhaps a few refilled.
        assert limits.ping_burst <= pongs <= limits.ping_burst + 5, pongs
        assert close is not None and close.code == RelayCloseCode.RATE_LIMITED
        assert app.statistics().drops == {"rate_limited": 1}
        await wait_for(lambda: app.statistics().connections == 0)


async def test_pings_at_the_clients_pace_are_all_answered() -> None:
    async with running_relay() as (app, host, port):
        client = await RawClient.connect(host, port, ROOM_PATH, rcvbuf=1 << 20)
        pongs = 0
        for i in range(RelayLimits().ping_burst):
            await client.ping(b"%d" % i)
            with trio.fail_after(10):
                while pongs <= i:
                    client.ws.receive_data(await client.sock.recv(65536))
                    pongs += sum(isinstance(e, Pong) for e in client.ws.events())
        client.reset()
        assert pongs == RelayLimits().ping_burst and app.statistics().drops == {}


# --------------------------------------------------------------------------- heads


@pytest.mark.parametrize("path", ["/healthz", ROOM_PATH])
async def test_a_complete_head_over_the_limit_is_refused(path: str) -> None:
    """55 KB of headers in one read: h11 accepts a head that is already complete."""
    async with running_relay() as (app, host, port):
        upgrade = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\n") if path == ROOM_PATH else b""
        fat = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(55))
        head = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: relay\r\n" + upgrade + fat + b"\r\n"
        assert len(head) > 55_000
        answer = await exchange(port, head)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
        # A head within the limit is served as before.
        answer = await exchange(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: relay\r\n"
                                + upgrade + b"\r\n")
        assert answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 101")), answer[:100]
        assert app.statistics().connections_total == (1 if path == ROOM_PATH else 0)


# --------------------------------------------------------------------------- HTTP/2


async def _h2_request(port: int, prefix: bytes, headers: list[tuple[str, str]],
                      *, upgrade: bool = False) -> tuple[int | None, bytes]:
    """Speak HTTP/2 to the relay: ``(status of stream 1, body)``."""
    config = h2.config.H2Configuration(client_side=True)
    conn = h2.connection.H2Connection(config=config)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    if upgrade:
        settings = conn.initiate_upgrade_connection()
        await stream.send_all(prefix.replace(b"SETTINGS", settings))
        got = b""
        while b"\r\n\r\n" not in got:
            got += await stream.receive_some(65536)
        assert got.startswith(b"HTTP/1.1 101"), got[:100]
        rest = got.split(b"\r\n\r\n", 1)[1]
        await stream.send_all(conn.data_to_send())
        events = conn.receive_data(rest) if rest else []
    else:
        conn.initiate_connection()
        conn.send_headers(1, headers, end_stream=True)
        await stream.send_all(conn.data_to_send())
        events = []
    status: int | None = None
    body = b""
    done = False
    with trio.move_on_after(5):
        while not done:
            for event in events:
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == 1:
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == 1:
                    body += event.data
                elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset) \
                        and event.stream_id == 1:
                    done = True
            await stream.send_all(conn.data_to_send())
            if done:
                break
            data = await stream.receive_some(65536)
            if not data:
                break
            events = conn.receive_data(data)
    await stream.aclose()
    return status, body


async def test_http2_with_prior_knowledge_is_refused() -> None:
    async with running_relay() as (app, host, port):
        for path in ("/healthz", "/metrics"):
            status, body = await _h2_request(port, b"", [
                (":method", "GET"), (":path", path), (":scheme", "http"),
                (":authority", "relay")])
            assert status == 505 and b"HTTP/1.1 only" in body


async def test_an_h2c_upgrade_gets_505_on_every_request() -> None:
    async with running_relay() as (app, host, port):
        request = (b"GET /healthz HTTP/1.1\r\nHost: relay\r\nConnection: Upgrade, "
                   b"HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: SETTINGS\r\n\r\n")
        status, body = await _h2_request(port, request, [], upgrade=True)
        assert status == 505 and b"HTTP/1.1 only" in body


async def test_a_websocket_over_http2_is_not_accepted() -> None:
    async with running_relay() as (app, host, port):
        status, _ = await _h2_request(port, b"", [
            (":method", "CONNECT"), (":protocol", "websocket"), (":path", ROOM_PATH),
            (":scheme", "http"), (":authority", "relay"), ("sec-websocket-version", "13")])
        assert status != 200
        assert app.statistics().connections_total == 0
