"""Issue 15 item 1: connections the relay has closed give their slot back, whatever
their clients do afterwards, with the real hypercorn server on loopback.

The attack: two connections in one room each send 200 KiB messages and never
read. The relay's writer to each blocks in hypercorn's (shielded) socket send,
the relay closes both as too slow, and then the clients reset, go silent, or
keep sending. Each connection must be gone (counter, socket) within the
slow-reader deadline plus the close grace, and the address must not be locked out.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from relay import RelayApp, RelayLimits
from tests.relay_attack_helpers import RawClient, flood, open_socket_fds, running_relay
from tests.sync_helpers import wait_for

REPO = Path(__file__).resolve().parent.parent
ROOM_PATH = "/v1/rooms/" + "ab" * 32
MESSAGE_BYTES = 200 * 1024
FLOOD_MESSAGES = 20_000
"""Bounded, and more than the test lets them send: the floods last until stopped."""
HANG_S = 20.0
"""What the tests wait before calling a connection leaked (the limits below are < 2 s)."""


def tight_limits() -> RelayLimits:
    return RelayLimits(slow_reader_timeout_s=0.5, close_grace_s=0.5,
                       max_connections_per_address=4)


async def flooding_pair(app: RelayApp, host: str, port: int,
                        nursery: trio.Nursery) -> tuple[RawClient, RawClient]:
    """Two clients in one room that send 200 KiB messages and never read, until the
    relay has closed at least one of them as too slow."""
    a = await RawClient.connect(host, port, ROOM_PATH)
    b = await RawClient.connect(host, port, ROOM_PATH)
    nursery.start_soon(flood, a, MESSAGE_BYTES, FLOOD_MESSAGES)
    nursery.start_soon(flood, b, MESSAGE_BYTES, FLOOD_MESSAGES)
    await wait_for(lambda: app.statistics().drops.get("too_slow", 0) >= 1, HANG_S)
    return a, b


@pytest.mark.parametrize("then", [
    "reset-at-once", "reset-after-the-grace", "stay-silent", "close-without-reading",
])
async def test_flooders_that_never_read_give_their_slots_back(then: str) -> None:
    limits = tight_limits()
    async with running_relay(limits) as (app, host, port):
        baseline = open_socket_fds()
        async with trio.open_nursery() as nursery:
            a, b = await flooding_pair(app, host, port, nursery)
            if then.startswith("reset"):
                if then == "reset-after-the-grace":
                    # The attack's timing, not a wait for the relay: the clients reset
                    # once the relay has stopped waiting for their close.
                    await trio.sleep(limits.slow_reader_timeout_s + 2 * limits.close_grace_s)
                a.reset()
                b.reset()
            else:
                nursery.cancel_scope.cancel()  # stop the floods; the sockets stay open
        if then == "close-without-reading":
            for client in (a, b):
                with trio.move_on_after(1):  # the relay may no longer read it
                    await client.close_frame()
        try:
            await wait_for(lambda: app.statistics().connections == 0, HANG_S)
            # The relay's side of each socket is closed too (one fd per connection).
            still_open = 0 if then.startswith("reset") else 2  # the clients' own sockets
            await wait_for(lambda: open_socket_fds() <= baseline + still_open, HANG_S)
            assert app.statistics().queued_bytes == 0
            if then == "stay-silent":
                assert app.statistics().aborted >= 1, "only a reset ends these"
            # The address is not locked out: a new pair meets and talks.
            c = await RawClient.connect(host, port, ROOM_PATH)
            d = await RawClient.connect(host, port, ROOM_PATH)
            await c.send_bytes(b"hello")
            assert b"hello" in await d.receive_until(b"hello")
            c.reset()
            d.reset()
        finally:
            if not then.startswith("reset"):
                a.reset()
                b.reset()
        await wait_for(lambda: app.statistics().connections == 0, HANG_S)


async def test_many_leaked_pairs_would_lock_the_address_out() -> None:
    """Twice the per-address limit in pairs, one after the other: each pair's slots
    come back, so the address is never refused with 4002."""
    limits = tight_limits()
    async with running_relay(limits) as (app, host, port):
        for _ in range(limits.max_connections_per_address):
            async with trio.open_nursery() as nursery:
                a, b = await flooding_pair(app, host, port, nursery)
                a.reset()
                b.reset()
            await wait_for(lambda: app.statistics().connections == 0, HANG_S)
        assert "too_many_from_address" not in app.statistics().drops


async def test_sigterm_ends_the_relay_soon_though_its_clients_read_nothing() -> None:
    """mirror-relay with two connections stuck writing to clients that read nothing
    and never close: SIGTERM resets them after the shutdown grace and exits."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "relay", "--port", "0", "--json", "--log-level", "INFO",
         "--slow-reader-timeout-s", "0.5", "--send-stall-timeout-s", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = b""
        with trio.fail_after(HANG_S):
            while not line.endswith(b"\n"):
                line += await proc.stdout.receive_some(1)
        host, port = json.loads(line)["url"].removeprefix("http://").rsplit(":", 1)

        async def stalled() -> bool:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://{host}:{port}/metrics")).text
            return 'relay_drops_total{reason="too_slow"} 0' not in text

        async with trio.open_nursery() as nursery:
            a = await RawClient.connect(host, int(port), ROOM_PATH)
            b = await RawClient.connect(host, int(port), ROOM_PATH)
            nursery.start_soon(flood, a, MESSAGE_BYTES, FLOOD_MESSAGES)
            nursery.start_soon(flood, b, MESSAGE_BYTES, FLOOD_MESSAGES)
            await wait_for(stalled, HANG_S)
            nursery.cancel_scope.cancel()  # the clients stay open and silent
        proc.send_signal(signal.SIGTERM)
        start = trio.current_time()
        with trio.fail_after(HANG_S):  # a hang detector, far above the 2 s grace
            code = await proc.wait()
            log = b""
            while chunk := await proc.stderr.receive_some():
                log += chunk
        took = trio.current_time() - start
        assert code == 0, f"exited with {code} after {took:.1f} s:\n{log.decode()}"
        # Nothing was left for hypercorn's own graceful timeout to cut.
        assert b"every connection closed" in log, f"after {took:.1f} s:\n{log.decode()}"
        a.reset()
        b.reset()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await proc.stdout.aclose()
        await proc.stderr.aclose()
