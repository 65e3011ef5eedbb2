"""Sync sessions through a relay (T3): the relay sees only ciphertext, a flipped
byte is caught, a restarted relay loses nothing; room placement and ids."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from pycrdt import Text

from crdt import SyncClass
from node.sync.relay import rank_relays, room_url
from protocol.relay import pair_room, rendezvous_room
from relay import RelayApp, serve_relay
from tests.relay_links import Link
from tests.sync_helpers import Device, has, open_devices, texts, wait_for

CANARY = "CANARY-5e1a"


class RecordingApp:
    """The relay app behind a recorder of everything it receives; optionally a
    tamperer that flips one byte of one forwarded message."""

    def __init__(self, app: RelayApp) -> None:
        self.app = app
        self.limits = app.limits
        self.received: list[bytes] = []
        self.flip_next = False
        self.flipped = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.received.append(repr(scope).encode())

        async def recording_receive() -> Any:
            message = await receive()
            for key in ("bytes", "text", "body"):
                value = message.get(key)
                if value:
                    self.received.append(value if isinstance(value, bytes) else value.encode())
            data = message.get("bytes")
            if self.flip_next and data and len(data) > 40:
                self.flip_next = False
                self.flipped += 1
                middle = len(data) // 2
                message = dict(message, bytes=data[:middle] + bytes([data[middle] ^ 1])
                               + data[middle + 1:])
            return message

        await self.app(scope, recording_receive, send)


@asynccontextmanager
async def relay_at(port: int = 0) -> AsyncIterator[tuple[RecordingApp, str]]:
    app = RecordingApp(RelayApp())
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_relay, app, "127.0.0.1", port)  # type: ignore[arg-type]
        yield app, url
        nursery.cancel_scope.cancel()


async def caught_up(link: Link) -> bool:
    session = link.live()
    return session is not None and session.caught_up.is_set() and not session._closing


async def test_relay_sees_no_canary_in_bytes_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    names = [f"laptop-{CANARY}-name", f"phone-{CANARY}-name"]
    async with open_devices(tmp_path, names) as (a, b), relay_at() as (recorder, url):
        await a.journal.add(f"text {CANARY} on the laptop")
        doc = await a.store.open_doc(f"notes/{CANARY}-id", kind="notes",
                                     sync_class=SyncClass.DEVICES)
        doc.doc["body"] = Text(f"body {CANARY}")
        la, lb = Link(a, b, [url]), Link(b, a, [url])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(la.run)
            nursery.start_soon(lb.run)
            await wait_for(has(b, f"text {CANARY} on the laptop"))
            await wait_for(lambda: b.store.info(f"notes/{CANARY}-id") is not None)
            await a.journal.add(f"live {CANARY} after catch-up")
            await wait_for(has(b, f"live {CANARY} after catch-up"))
            nursery.cancel_scope.cancel()
    seen = b"".join(recorder.received)
    assert len(seen) > 1000, "the recorder saw the sessions"
    secrets = [CANARY.encode(), a.keyring.device_id.encode(), b.keyring.device_id.encode(),
               a.keyring.device_public, b.keyring.device_public, a.keyring.group_secret]
    for secret in secrets:
        assert secret not in seen, f"the relay received {secret!r}"
    relay_logs = [r.getMessage() for r in caplog.records if r.name.startswith(
        ("mirror.relay", "hypercorn"))]
    for line in relay_logs:
        for secret in secrets[:3]:
            assert secret.decode() not in line


async def test_a_flipped_byte_is_rejected_state_kept_then_resync(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["laptop", "phone"]) as (a, b), relay_at() as (rec, url):
        await a.journal.add("before the tampering")
        la, lb = Link(a, b, [url]), Link(b, a, [url])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(la.run)
            nursery.start_soon(lb.run)
            await wait_for(has(b, "before the tampering"))
            await wait_for(lambda: caught_up(la))
            await wait_for(lambda: caught_up(lb))
            first_a, first_b = la.live(), lb.live()
            state_before = (await texts(b))
            rec.flip_next = True
            await a.journal.add("sent while the relay tampers")
            # The receiver refuses the frame and closes; nothing it held is lost.
            await wait_for(lambda: any("protocol" in f for f in lb.failures + la.failures))
            assert rec.flipped == 1
            assert state_before <= await texts(b)
            # A new session (the relay no longer tampers) brings the change over.
            await wait_for(has(b, "sent while the relay tampers"))
            assert la.live() is not first_a and lb.live() is not first_b
            nursery.cancel_scope.cancel()


async def test_relay_restarted_mid_session_nodes_reconnect_and_converge(tmp_path: Path) -> None:
    async with open_devices(tmp_path, ["laptop", "phone"]) as (a, b):
        async with relay_at() as (_, url):
            port = int(url.rsplit(":", 1)[1])
        la, lb = Link(a, b, [url]), Link(b, a, [url])
        async with trio.open_nursery() as nodes:
            nodes.start_soon(la.run)
            nodes.start_soon(lb.run)
            async with relay_at(port):
                await a.journal.add("first, through the relay")
                await wait_for(has(b, "first, through the relay"))
            # The relay is gone: both keep writing.
            for i in range(3):
                await a.journal.add(f"laptop offline {i}")
                await b.journal.add(f"phone offline {i}")
            async with relay_at(port):
                expected = {"first, through the relay"} | {
                    f"{who} offline {i}" for who in ("laptop", "phone") for i in range(3)}
                for device in (a, b):
                    await wait_for(lambda d=device: _has_all(d, expected), deadline_s=20)
            nodes.cancel_scope.cancel()
    assert len(la.sessions) >= 2 and len(lb.sessions) >= 2


async def _has_all(device: Device, expected: set[str]) -> bool:
    return expected <= await texts(device)


# --------------------------------------------------------------------------- rooms, placement


def test_pair_rooms_are_symmetric_and_distinct() -> None:
    secret, k1, k2, k3 = bytes(32), b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    assert pair_room(secret, 0, k1, k2) == pair_room(secret, 0, k2, k1)
    rooms = {pair_room(secret, 0, k1, k2), pair_room(secret, 0, k1, k3),
             pair_room(secret, 1, k1, k2), pair_room(b"\x09" * 32, 0, k1, k2)}
    assert len(rooms) == 4 and all(len(r) == 32 for r in rooms)


def test_rendezvous_room_depends_on_two_characters_of_the_code_only() -> None:
    from protocol.pairing import CODE_ALPHABET

    a, b, c = CODE_ALPHABET[:3]
    assert rendezvous_room(a + b + c * 6) == rendezvous_room(a + b + b * 6)
    assert rendezvous_room(a + b + c * 6) != rendezvous_room(a + c + c * 6)


def test_rendezvous_hashing_agrees_whatever_the_order_and_moves_few_rooms() -> None:
    relays = [f"https://relay{i}.example" for i in range(4)]
    rooms = [bytes([i, j]) * 16 for i in range(16) for j in range(16)]
    first = {room: rank_relays(relays, room)[0] for room in rooms}
    assert all(rank_relays(list(reversed(relays)), r)[0] == first[r] for r in rooms)
    counts = {url: sum(1 for v in first.values() if v == url) for url in relays}
    assert min(counts.values()) > len(rooms) / 8, counts  # spread over all relays
    grown = {room: rank_relays([*relays, "https://relay4.example"], room)[0] for room in rooms}
    moved = [r for r in rooms if grown[r] != first[r]]
    assert all(grown[r] == "https://relay4.example" for r in moved), "only to the new relay"
    assert len(moved) < len(rooms) / 2


def test_room_urls() -> None:
    room = bytes(range(32))
    assert room_url("https://relay.example/", room) == (
        "wss://relay.example/v1/rooms/" + room.hex())
    assert room_url("http://127.0.0.1:8765/prefix", room).startswith(
        "ws://127.0.0.1:8765/prefix/v1/rooms/")
