"""The relay server alone: forwarding, presence, limits, floods, hostile HTTP (T5, T7, T8).

Every server starts inside the test on 127.0.0.1 port 0. No sleeps: tests wait
on conditions (the relay's statistics) with deadlines.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx_ws
import pytest
import trio
import trio.testing
from httpx_ws import (
    WebSocketDisconnect,
    WebSocketNetworkError,
    WebSocketUpgradeError,
)
from hypothesis import given
from hypothesis import strategies as st
from wsproto.utilities import LocalProtocolError

from relay import RelayApp, RelayCloseCode, RelayLimits, serve_relay
from relay.limits import MAX_FRAME_BYTES, MAX_MERGED_BYTES
from serving import hypercorn_trim
from tests.sync_helpers import wait_for

ROOM = "ab" * 32


@asynccontextmanager
async def running_relay(limits: RelayLimits | None = None) -> AsyncIterator[tuple[RelayApp, str]]:
    app = RelayApp(limits)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_relay, app, "127.0.0.1", 0)
        assert url.startswith("http://127.0.0.1:")
        yield app, url
        nursery.cancel_scope.cancel()


def aconnect_ws(url: str, http: httpx.AsyncClient) -> Any:
    """A client of the relay, as a node is: the relay merges queued chunks into
    messages of up to MAX_MERGED_BYTES, over httpx-ws's 64 KiB default cap."""
    return httpx_ws.aconnect_ws(url, http, max_message_size_bytes=MAX_MERGED_BYTES)


def ws_url(url: str, room: str = ROOM) -> str:
    return url.replace("http://", "ws://") + "/v1/rooms/" + room


async def test_forwards_to_the_others_and_announces_presence() -> None:
    async with running_relay() as (app, url), httpx.AsyncClient() as http:
        async with aconnect_ws(ws_url(url), http) as a:
            assert await a.receive_text() == "present 0"
            async with aconnect_ws(ws_url(url), http) as b:
                assert await b.receive_text() == "present 1"
                assert await a.receive_text() == "joined 1"
                async with aconnect_ws(ws_url(url, "cd" * 32), http) as elsewhere:
                    assert await elsewhere.receive_text() == "present 0"
                    await a.send_bytes(b"one")
                    await a.send_bytes(b"two")
                    got = b""
                    while got != b"onetwo":  # chunks may be merged, never reordered
                        got += await b.receive_bytes()
                    await b.send_bytes(b"back")
                    assert await a.receive_bytes() == b"back"
                    assert app.statistics().rooms == 2
                    assert app.statistics().connections == 3
            assert await a.receive_text() == "left 0"
            stats = app.statistics()
            assert stats.frames_in == 3 and stats.frames_forwarded == 3
        await wait_for(lambda: app.statistics().connections == 0)
        assert app.statistics().rooms == 0, "rooms are forgotten when empty"


async def test_exactly_the_maximum_frame_passes_and_one_more_is_refused() -> None:
    limits = RelayLimits(max_frame_bytes=4096, max_merged_bytes=4096)
    async with running_relay(limits) as (app, url), httpx.AsyncClient() as http:
        async with aconnect_ws(ws_url(url), http) as a, aconnect_ws(ws_url(url), http) as b:
            await a.receive_text()
            await b.receive_text()
            await a.receive_text()
            await a.send_bytes(b"x" * 4096)
            assert await b.receive_bytes() == b"x" * 4096
            await a.send_bytes(b"x" * 4097)
            with pytest.raises(WebSocketDisconnect) as closed:
                await a.receive_bytes()
            assert closed.value.code == RelayCloseCode.MESSAGE_TOO_BIG
            assert await b.receive_text() == "left 0"
        assert app.statistics().drops["message_too_big"] == 1


async def test_a_huge_message_is_refused_without_buffering_it() -> None:
    async with running_relay() as (app, url), httpx.AsyncClient() as http:
        async with aconnect_ws(ws_url(url), http) as a:
            await a.receive_text()
            # 4 MiB against a 256 KiB limit: hypercorn stops buffering at the limit.
            try:
                await a.send_bytes(os.urandom(4 * 1024 * 1024))
                with pytest.raises(WebSocketDisconnect) as closed:
                    await a.receive_bytes()
                assert closed.value.code == RelayCloseCode.MESSAGE_TOO_BIG
            except WebSocketDisconnect as exc:  # closed while we were still sending
                assert exc.code == RelayCloseCode.MESSAGE_TOO_BIG
        assert app.statistics().peak_queued_bytes <= MAX_FRAME_BYTES


async def test_text_messages_are_refused() -> None:
    async with running_relay() as (app, url), httpx.AsyncClient() as http, \
            aconnect_ws(ws_url(url), http) as a:
        await a.receive_text()
        await a.send_text("hello")
        with pytest.raises(WebSocketDisconnect) as closed:
            await a.receive_bytes()
        assert closed.value.code == RelayCloseCode.UNSUPPORTED_DATA


async def test_room_and_address_limits_refuse_with_their_codes() -> None:
    limits = RelayLimits(max_connections_per_room=2, max_connections_per_address=3)
    async with running_relay(limits) as (app, url), httpx.AsyncClient() as http:
        async with aconnect_ws(ws_url(url), http) as a, aconnect_ws(ws_url(url), http) as b:
            assert await a.receive_text() == "present 0"
            assert await b.receive_text() == "present 1"
            async with aconnect_ws(ws_url(url), http) as third:
                with pytest.raises(WebSocketDisconnect) as closed:
                    await third.receive_text()
                assert closed.value.code == RelayCloseCode.ROOM_FULL
            async with aconnect_ws(ws_url(url, "cd" * 32), http) as c:
                assert await c.receive_text() == "present 0"
                async with aconnect_ws(ws_url(url, "ef" * 32), http) as d:
                    with pytest.raises(WebSocketDisconnect) as closed:
                        await d.receive_text()
                    assert closed.value.code == RelayCloseCode.TOO_MANY_FROM_ADDRESS
            await a.send_bytes(b"still working")
            assert await b.receive_bytes() == b"still working"
        drops = app.statistics().drops
        assert drops["room_full"] == 1 and drops["too_many_from_address"] == 1


async def test_total_capacity_refuses_with_its_code() -> None:
    async with running_relay(RelayLimits(max_connections=1)) as (app, url), \
            httpx.AsyncClient() as http, aconnect_ws(ws_url(url), http) as a:
        await a.receive_text()
        async with aconnect_ws(ws_url(url, "cd" * 32), http) as b:
            with pytest.raises(WebSocketDisconnect) as closed:
                await b.receive_text()
            assert closed.value.code == RelayCloseCode.AT_CAPACITY


async def test_a_flood_is_cut_by_the_rate_limit_and_memory_stays_bounded() -> None:
    limits = RelayLimits(max_frames_per_s=200.0, frame_burst=50)
    async with running_relay(limits) as (app, url), httpx.AsyncClient() as http:
        async with aconnect_ws(ws_url(url), http) as a, aconnect_ws(ws_url(url), http) as b:
            await a.receive_text()
            await b.receive_text()
            await a.receive_text()
            for _ in range(100_000):  # bounded: the relay cuts us long before
                try:
                    await b.send_bytes(b"f" * 512)
                except (LocalProtocolError, WebSocketNetworkError):
                    break  # the relay closed on us
                await trio.lowlevel.checkpoint()
            with pytest.raises(WebSocketDisconnect) as closed:
                while True:
                    await b.receive_bytes()
            assert closed.value.code == RelayCloseCode.RATE_LIMITED
        await wait_for(lambda: app.statistics().connections == 0)
        stats = app.statistics()
        assert stats.drops["rate_limited"] == 1
        assert stats.frames_in <= 50 + 200 * 10  # burst + rate over the test's duration
        assert stats.queued_bytes == 0
        async with httpx.AsyncClient() as fresh:
            assert (await fresh.get(url + "/healthz")).text == "ok\n", "the relay stays up"


async def test_a_slow_reader_is_disconnected_and_its_queue_freed() -> None:
    """A reader that never reads: its sender waits, then the reader is cut (TOO_SLOW)."""
    limits = RelayLimits(max_queue_bytes=64 * 1024, slow_reader_timeout_s=0.5,
                         max_frames_per_s=1e6, frame_burst=1_000_000)
    async with running_relay(limits) as (app, url), httpx.AsyncClient() as http:
        host, port = url.removeprefix("http://").split(":")
        slow = await _raw_ws_client(host, int(port), ROOM)  # tiny receive buffer, never reads
        try:
            await wait_for(lambda: app.statistics().connections == 1)
            async with aconnect_ws(ws_url(url), http) as sender:
                assert await sender.receive_text() == "present 1"
                chunk = b"s" * 32 * 1024
                with trio.fail_after(20):
                    while app.statistics().drops.get("too_slow", 0) == 0:
                        await sender.send_bytes(chunk)
                assert await sender.receive_text() == "left 0"
                stats = app.statistics()
                # bounded: the limit plus one message per sender, never the whole flood
                assert stats.peak_queued_bytes <= 64 * 1024 + MAX_FRAME_BYTES
                # the sender is not punished: it can go on talking to a new peer
                async with aconnect_ws(ws_url(url), http) as fresh:
                    assert await fresh.receive_text() == "present 1"
                    assert await sender.receive_text() == "joined 1"
                    await sender.send_bytes(b"hi")
                    got = b""
                    while not got.endswith(b"hi"):  # after the sender's chunks in flight
                        got += await fresh.receive_bytes()
        finally:
            slow.close()
        await wait_for(lambda: app.statistics().connections == 0)
        assert app.statistics().queued_bytes == 0


async def _raw_ws_client(host: str, port: int, room: str) -> trio.socket.SocketType:
    """A WebSocket client that completes the upgrade and then never reads."""
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    await sock.connect((host, port))
    request = (
        f"GET /v1/rooms/{room} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()
    while request:
        request = request[await sock.send(request):]
    head = b""
    while b"\r\n\r\n" not in head:
        head += await sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def test_healthz_and_metrics() -> None:
    async with running_relay() as (app, url), httpx.AsyncClient() as http:
        health = await http.get(url + "/healthz")
        assert health.status_code == 200 and health.text == "ok\n"
        metrics = await http.get(url + "/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        names = {line.split()[0].split("{")[0] for line in metrics.text.splitlines()
                 if line and not line.startswith("#")}
        assert {"relay_connections", "relay_rooms", "relay_frames_received_total",
                "relay_bytes_received_total", "relay_drops_total"} <= names
        head = await http.head(url + "/metrics")
        assert head.status_code == 200 and head.content == b""


async def test_bad_room_paths_are_refused_at_the_upgrade() -> None:
    async with running_relay() as (app, url), httpx.AsyncClient() as http:
        for room in ("AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, "ab" * 32 + "/x", ""):
            with pytest.raises(WebSocketUpgradeError) as refused:
                async with aconnect_ws(ws_url(url, room), http):
                    pass
            assert refused.value.response.status_code == 404
        assert app.statistics().connections_total == 0


# --------------------------------------------------------------------------- T5: hostile HTTP

_PATHS = ["/healthz", "/metrics", "/v1/rooms/" + ROOM, "/", "/v1/rooms/", "/%00", "/%ff%fe"]


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["garbage", "mutated"]))
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=600))
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD", b"DELETE", b"G\x00T", b"PRI"]))
    path = draw(st.sampled_from(_PATHS)).encode()
    headers = draw(st.lists(st.sampled_from([
        b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Version: 13",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Content-Length: 5",
        b"Content-Length: -1", b"Transfer-Encoding: chunked", b"Host: \xff",
        b"X: " + b"a" * 9000, b"Sec-WebSocket-Version: 99",
    ]), max_size=6))
    body = draw(st.binary(max_size=64))
    request = method + b" " + path + b" HTTP/1.1\r\nHost: relay\r\n" + b"\r\n".join(headers)
    return request + b"\r\n\r\n" + body


async def _send_raw(port: int, data: bytes, *, one_byte_at_a_time: bool) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    answer = b""
    with trio.move_on_after(2):
        try:
            if one_byte_at_a_time:
                for i in range(len(data)):
                    await stream.send_all(data[i:i + 1])
            else:
                await stream.send_all(data)
            await stream.send_eof()
            while len(answer) < 65536:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    break
                answer += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
    await stream.aclose()
    return answer


def test_hostile_http_input_never_hurts_the_relay() -> None:
    """Arbitrary bytes and mutated requests, whole and one byte at a time: the relay
    answers or hangs up, never crashes, and nothing is left connected."""
    @given(st.lists(_requests(), min_size=1, max_size=4), st.booleans())
    def check(requests: list[bytes], bytewise: bool) -> None:
        async def main() -> None:
            async with running_relay() as (app, url):
                port = int(url.rsplit(":", 1)[1])
                for data in requests:
                    answer = await _send_raw(port, data, one_byte_at_a_time=bytewise)
                    assert not answer.startswith(b"HTTP/1.1 500"), answer[:200]
                async with httpx.AsyncClient() as http:
                    assert (await http.get(url + "/healthz")).status_code == 200
                await wait_for(lambda: app.statistics().connections == 0)

        trio.run(main)

    check()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        RelayLimits(max_frame_bytes=0)
    with pytest.raises(ValueError):
        RelayLimits(max_frames_per_s=-1)
    with pytest.raises(ValueError):
        RelayLimits(max_frame_bytes=1024, max_merged_bytes=512)


# --------------------------------------------------------------------------- hypercorn 0.18 trim


async def test_upgraded_connections_are_trimmed_and_still_work() -> None:
    """relay.server's adaptation of hypercorn 0.18 is applied on each accepted
    WebSocket, and forwarding, ping/pong and closing work over it."""
    trim = hypercorn_trim.trimmer()
    assert trim is not None, (
        "hypercorn or wsproto is not a version relay.server trims: read how the new "
        "version uses the objects relay.server replaces, then update TRIMMED_VERSIONS")
    trimmed: list[tuple[bool, Any]] = []
    app = RelayApp()
    app.after_accept = lambda send: trimmed.append((trim(send), send))
    async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
        url = await nursery.start(serve_relay, app, "127.0.0.1", 0)
        async with aconnect_ws(ws_url(url), http) as a:
            await a.receive_text()
            async with aconnect_ws(ws_url(url), http) as b:
                await b.receive_text()
                await a.receive_text()
                for i in range(20):
                    await a.send_bytes(b"%d;" % i)
                got = b""
                while got != b"".join(b"%d;" % i for i in range(20)):
                    got += await b.receive_bytes()
                await b.send_bytes(b"back")
                assert await a.receive_bytes() == b"back"
                pong = await a.ping()  # answered by hypercorn's own task, under the send lock
                with trio.fail_after(10):
                    await pong.wait()
            assert await a.receive_text() == "left 0"
        await wait_for(lambda: app.statistics().connections == 0)
        nursery.cancel_scope.cancel()
    assert [done for done, _ in trimmed] == [True, True]
    stream = trimmed[0][1].__self__
    http_protocol = stream.send.__self__
    tcp = http_protocol.send.__self__
    assert isinstance(tcp.send_lock, hypercorn_trim._SendLock)
    assert tcp.protocol is http_protocol
    assert http_protocol.connection.h11_connection is None
    assert stream.handshake.accepted and "headers" not in stream.scope
    assert isinstance(stream.connection._events, list)


async def test_other_hypercorn_versions_are_served_stock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hypercorn_trim, "_version", lambda package: "0.17.0")
    assert hypercorn_trim.trimmer() is None
    async with running_relay() as (app, url), httpx.AsyncClient() as http:
        assert app.after_accept is None
        async with aconnect_ws(ws_url(url), http) as a, aconnect_ws(ws_url(url), http) as b:
            await a.receive_text()
            await b.receive_text()
            await a.receive_text()
            await a.send_bytes(b"stock")
            assert await b.receive_bytes() == b"stock"


async def test_the_trim_leaves_what_it_does_not_recognise() -> None:
    trim = hypercorn_trim.trimmer()
    assert trim is not None

    async def send(message: Any) -> None:
        pass

    assert trim(send) is False


async def test_the_send_lock_is_exclusive_and_free_without_a_scheduler_turn() -> None:
    lock = hypercorn_trim._SendLock()
    with trio.testing.assert_no_checkpoints():
        async with lock:
            pass
    order: list[str] = []
    release = trio.Event()

    async def hold(name: str) -> None:
        async with lock:
            order.append(name)
            if name == "first":
                await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(hold, "second")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(hold, "third")
        await trio.testing.wait_all_tasks_blocked()
        assert order == ["first"]
        release.set()
    assert order == ["first", "second", "third"]
    assert not lock.held
