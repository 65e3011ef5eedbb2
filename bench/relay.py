"""Benchmark of the relay on loopback (bounded; stops by itself).

    .venv/bin/python bench/relay.py [--frames 20000] [--edits 10000] [--idle 1000]
    .venv/bin/python bench/relay.py --flood-pairs 8 [--flood-seconds 20]
        [--flood-message-bytes 65536]
    .venv/bin/python bench/relay.py --scale-out     # several instances, HAProxy: see
                                                    # bench/relay_scaleout.py

(a) frames/s of 1 KiB messages from A to B through one room, and the one-way
    latency of those frames (p50/p99) and of single frames on an idle relay;
(b) the relay's CPU time per forwarded frame (utime+stime from /proc), and the
    clients' (this process);
(c) RSS per idle connection, with --idle connections held open;
(d) update propagation: A makes N small pycrdt edits, B applies them. Through
    the relay, each edit is sealed end to end by ``protocol.Connection``
    (handshake inside, ChaCha20-Poly1305 per frame) and queued frames are
    coalesced into one write, as the node's session writer does. The same
    workload runs through pycrdt-websocket's server with pycrdt's Provider on
    both sides, and the ratio is printed. pycrdt-websocket is a bench-only
    dependency:  .venv/bin/pip install pycrdt-websocket

(e) with --flood-pairs N: a quiet room's round trip (one 64-byte message each
    way every 10 ms) through a relay with its default limits, first alone, then
    while N pairs of connections in other rooms each send as fast as the relay
    takes them (and read what they get). The flooders run in their own process
    (this file --flood), so neither they nor the relay share this process's core
    time with the quiet room's clients. Printed: p50/p99/max of the round trip
    alone and under the flood (the whole flood, and after its first seconds,
    once the flooders' bursts are spent), and the flood's throughput.

Each server is its own process (python -m relay / this file --serve-pycrdt),
so its CPU and RSS are its own; the clients run in this process.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx
from httpx_ws import aconnect_ws

from bench import relay_scaleout

FRAME = 1024
CLK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- helpers


def start_server(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, json.loads(line)["url"]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def run_queue_wait_s(pid: int) -> float:
    """Time *pid*'s threads spent runnable but waiting for a core (/proc schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "schedstat").read_text().split()
        total += int(fields[1])
    return total / 1e9


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ws(url: str, room: str) -> str:
    return url.replace("http://", "ws://") + "/v1/rooms/" + room


async def metric(url: str, name: str) -> int:
    async with httpx.AsyncClient() as http:
        text = (await http.get(url + "/metrics")).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- (a) (b)


async def throughput(url: str, pid: int, frames: int) -> dict[str, float]:
    room = hashlib.sha256(b"throughput").hexdigest()
    latencies: list[float] = []
    # The relay merges queued frames into messages of up to 256 KiB: every client here
    # takes more than httpx-ws's 64 KiB default, or a busy run ends in 1009.
    async with httpx.AsyncClient() as http, \
            aconnect_ws(ws(url, room), http, max_message_size_bytes=1 << 20) as b, \
            aconnect_ws(ws(url, room), http, max_message_size_bytes=1 << 20) as a:
        await b.receive_text()
        await a.receive_text()
        await b.receive_text()
        # idle one-way latency: one frame at a time
        idle: list[float] = []
        for _ in range(500):
            t0 = time.perf_counter()
            await a.send_bytes(t0.hex().encode().ljust(FRAME, b"."))
            await b.receive_bytes()
            idle.append(time.perf_counter() - t0)
        cpu0 = cpu_s(pid)
        clients0 = cpu_s(os.getpid())
        forwarded0 = await metric(url, "relay_frames_forwarded_total")
        writes0 = await metric(url, "relay_frames_sent_total")
        done = trio.Event()
        result: dict[str, float] = {}

        async def receive() -> None:
            got = 0
            buffer = b""
            while got < frames:
                buffer += await b.receive_bytes()
                now = time.perf_counter()
                # The relay merges queued frames (up to 256 KiB a message); they stay
                # 1 KiB. Read them by offset: re-slicing the rest per frame would cost
                # the client O(n^2) on large merges and throttle what it measures.
                end = len(buffer) - len(buffer) % FRAME
                for at in range(0, end, FRAME):
                    stamp = buffer[at:at + 32].rstrip(b".")  # a float.hex() stamp, then dots
                    latencies.append(now - float.fromhex(stamp.decode()))
                    got += 1
                buffer = buffer[end:]
            result["end"] = time.perf_counter()
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            start = time.perf_counter()
            for _ in range(frames):
                await a.send_bytes(time.perf_counter().hex().encode().ljust(FRAME, b"."))
            with trio.fail_after(120):
                await done.wait()
        cpu1 = cpu_s(pid)
        clients1 = cpu_s(os.getpid())
        forwarded = await metric(url, "relay_frames_forwarded_total") - forwarded0
        writes = await metric(url, "relay_frames_sent_total") - writes0
    elapsed = result["end"] - start
    return {
        "frames_per_s": frames / elapsed,
        "latency_p50_ms": pct(latencies, 0.5) * 1e3,
        "latency_p99_ms": pct(latencies, 0.99) * 1e3,
        "idle_latency_p50_ms": pct(idle, 0.5) * 1e3,
        "idle_latency_p99_ms": pct(idle, 0.99) * 1e3,
        "relay_cpu_us_per_frame": (cpu1 - cpu0) / max(forwarded, 1) * 1e6,
        "relay_frames_per_write": forwarded / max(writes, 1),
        # Both clients run in this process: when it needs a core per frame rate, it
        # and not the relay sets frames_per_s.
        "clients_cpu_us_per_frame": (clients1 - clients0) / frames * 1e6,
    }


# --------------------------------------------------------------------------- (c)


async def idle_connections(url: str, pid: int, count: int) -> dict[str, float]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 200), hard))
    host, port = url.removeprefix("http://").split(":")
    before = rss_kb(pid)
    socks = []
    try:
        for i in range(count):
            sock = trio.socket.socket()
            await sock.connect((host, int(port)))
            room = hashlib.sha256(str(i // 2).encode()).hexdigest()
            await sock.send(
                f"GET /v1/rooms/{room} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            socks.append(sock)
        with trio.fail_after(60):
            while await metric(url, "relay_connections") < count:  # noqa: ASYNC110 (another process)
                await trio.sleep(0.1)
        await trio.sleep(1)
        after = rss_kb(pid)
    finally:
        for sock in socks:
            sock.close()
    return {"connections": count, "rss_before_kb": before, "rss_after_kb": after,
            "rss_per_connection_kb": (after - before) / count}


# --------------------------------------------------------------------------- (d)


async def propagate_relay(url: str, edits: int) -> dict[str, float]:
    """A makes *edits* small edits; each is sealed and sent through the relay to B."""
    import nacl.signing
    from pycrdt import Doc, Text

    from protocol import (
        INITIATOR,
        NEED_DATA,
        RESPONDER,
        Connection,
        Credentials,
        HandshakeComplete,
        Update,
    )

    secret = os.urandom(32)
    seeds = [os.urandom(32), os.urandom(32)]
    keys = frozenset(bytes(nacl.signing.SigningKey(s).verify_key) for s in seeds)
    conns = [Connection(role, Credentials(seed, secret, 0, keys), os.urandom)
             for role, seed in ((INITIATOR, seeds[0]), (RESPONDER, seeds[1]))]
    room = hashlib.sha256(b"propagate").hexdigest()
    doc_a, doc_b = Doc(), Doc()
    doc_a["t"] = text_a = Text()
    doc_b["t"] = text_b = Text()
    async with httpx.AsyncClient() as http, \
            aconnect_ws(ws(url, room), http, max_message_size_bytes=1 << 20) as wb, \
            aconnect_ws(ws(url, room), http, max_message_size_bytes=1 << 20) as wa:
        await wb.receive_text()
        await wa.receive_text()
        await wb.receive_text()
        sockets = [wa, wb]
        ready = [trio.Event(), trio.Event()]
        finished = trio.Event()

        async def pump(i: int) -> None:
            conn, sock = conns[i], sockets[i]
            while True:
                data = await sock.receive_bytes()
                conn.receive_data(data)
                while (event := conn.next_event()) is not NEED_DATA:
                    if isinstance(event, HandshakeComplete):
                        ready[i].set()
                    elif isinstance(event, Update) and i == 1:
                        doc_b.apply_update(event.update)
                        if len(text_b) >= edits:
                            finished.set()
                out = conn.data_to_send()
                if out:
                    await sock.send_bytes(out)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pump, 0)
            nursery.start_soon(pump, 1)
            await wa.send_bytes(conns[0].data_to_send())
            await ready[0].wait()
            await ready[1].wait()
            queued: list[bytes] = []
            doc_a.observe(lambda event: queued.append(
                conns[0].send(Update("journal/x", "devices", event.update))))
            start = time.perf_counter()
            for i in range(edits):
                text_a += "x"
                if len(queued) >= 64 or i == edits - 1:  # the session writer's coalescing
                    data, queued[:] = b"".join(queued), []
                    for at in range(0, len(data), 64 * 1024):
                        await wa.send_bytes(data[at:at + 64 * 1024])
            with trio.fail_after(120):
                await finished.wait()
            elapsed = time.perf_counter() - start
            nursery.cancel_scope.cancel()
    assert str(text_b) == str(text_a)
    return {"edits_per_s": edits / elapsed, "seconds": elapsed}


async def propagate_pycrdt(url: str, edits: int) -> dict[str, float]:
    from pycrdt import Doc, Provider, Text

    class Channel:
        def __init__(self, socket: Any, path: str) -> None:
            self.socket, self.path = socket, path

        def __aiter__(self) -> Channel:
            return self

        async def __anext__(self) -> bytes:
            return await self.recv()

        async def send(self, message: bytes) -> None:
            await self.socket.send_bytes(message)

        async def recv(self) -> bytes:
            return bytes(await self.socket.receive_bytes())

    doc_a, doc_b = Doc(), Doc()
    doc_a["t"] = text_a = Text()
    doc_b["t"] = text_b = Text()
    room = url.replace("http://", "ws://") + "/bench-room"
    async with httpx.AsyncClient() as http, \
            aconnect_ws(room, http, max_message_size_bytes=1 << 20) as wa, \
            aconnect_ws(room, http, max_message_size_bytes=1 << 20) as wb, \
            Provider(doc_a, Channel(wa, "bench-room")) as pa, \
            Provider(doc_b, Channel(wb, "bench-room")) as pb:
        await pa.synced.wait()
        await pb.synced.wait()
        start = time.perf_counter()
        for _ in range(edits):
            text_a += "x"
            await trio.lowlevel.checkpoint()
        with trio.fail_after(300):
            while len(text_b) < edits:  # noqa: ASYNC110 (the Provider's task applies them)
                await trio.sleep(0.01)
        elapsed = time.perf_counter() - start
    return {"edits_per_s": edits / elapsed, "seconds": elapsed}


def serve_pycrdt() -> None:
    import hypercorn.trio
    from hypercorn.config import Config
    from pycrdt.websocket import ASGIServer, WebsocketServer

    async def main() -> None:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        async with WebsocketServer() as server, trio.open_nursery() as nursery:
            binds = await nursery.start(hypercorn.trio.serve, ASGIServer(server), config)
            print(json.dumps({"url": binds[0]}), flush=True)

    trio.run(main)


# --------------------------------------------------------------------------- (e)

QUIET_INTERVAL_S = 0.01
QUIET_MESSAGE = 64


class RawWebSocket:
    """A minimal WebSocket client on a trio socket (wsproto), for the flood and the
    quiet room: no per-message overhead beyond framing, so the relay is what is
    measured."""

    def __init__(self, stream: trio.SocketStream) -> None:
        from wsproto import ConnectionType, WSConnection

        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)

    @classmethod
    async def connect(cls, url: str, room: str) -> RawWebSocket:
        from wsproto.events import AcceptConnection, Request

        host, port = url.removeprefix("http://").rsplit(":", 1)
        client = cls(await trio.open_tcp_stream(host, int(port)))
        await client.stream.send_all(client.ws.send(Request(host=host,
                                                            target="/v1/rooms/" + room)))
        while True:
            client.ws.receive_data(await client.stream.receive_some(65536))
            if any(isinstance(e, AcceptConnection) for e in client.ws.events()):
                return client

    def frame(self, data: bytes) -> bytes:
        from wsproto.events import BytesMessage

        return self.ws.send(BytesMessage(data=data))

    async def messages(self) -> Any:
        from wsproto.events import BytesMessage

        while True:
            data = await self.stream.receive_some(65536)
            if not data:
                return
            self.ws.receive_data(data)
            for event in self.ws.events():
                if isinstance(event, BytesMessage):
                    yield bytes(event.data)


async def quiet_room(url: str, seconds: float) -> list[tuple[float, float]]:
    """(start, round trip) of one message each way every QUIET_INTERVAL_S."""
    room = hashlib.sha256(b"quiet").hexdigest()
    a = await RawWebSocket.connect(url, room)
    b = await RawWebSocket.connect(url, room)
    samples: list[tuple[float, float]] = []

    async def echo() -> None:
        async for message in b.messages():
            await b.stream.send_all(b.frame(message))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        replies = a.messages()
        await trio.sleep(0.2)  # both have joined: "present"/"joined" are text, not counted
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            start = time.perf_counter()
            await a.stream.send_all(a.frame(b"q" * QUIET_MESSAGE))
            got = 0
            while got < QUIET_MESSAGE:  # the relay may merge; messages stay 64 bytes
                got += len(await replies.__anext__())
            samples.append((start, time.perf_counter() - start))
            await trio.sleep(max(0.0, start + QUIET_INTERVAL_S - time.perf_counter()))
        nursery.cancel_scope.cancel()
    await a.stream.aclose()
    await b.stream.aclose()
    return samples


async def flood(url: str, pairs: int, seconds: float, message_bytes: int) -> None:
    """N pairs, each side sending pre-framed messages as fast as the relay takes
    them and reading (and discarding) what it gets; prints bytes sent."""
    sent = 0
    deadline = trio.current_time() + seconds

    async def pump(sock: RawWebSocket, frame: bytes) -> None:
        nonlocal sent
        with trio.move_on_at(deadline):
            while True:
                await sock.stream.send_all(frame)
                sent += len(frame)

    async def drain(sock: RawWebSocket) -> None:
        with trio.move_on_at(deadline):
            while await sock.stream.receive_some(1 << 20):
                pass

    socks = []
    async with trio.open_nursery() as nursery:
        for i in range(pairs):
            room = hashlib.sha256(b"flood %d" % i).hexdigest()
            pair = [await RawWebSocket.connect(url, room), await RawWebSocket.connect(url, room)]
            socks += pair
            for sock in pair:
                nursery.start_soon(pump, sock, sock.frame(os.urandom(message_bytes)))
                nursery.start_soon(drain, sock)
    for sock in socks:
        await sock.stream.aclose()
    print(json.dumps({"flood_bytes_sent": sent}), flush=True)


def stats_ms(values: list[float]) -> dict[str, float]:
    return {"p50_ms": pct(values, 0.5) * 1e3, "p99_ms": pct(values, 0.99) * 1e3,
            "max_ms": max(values) * 1e3, "samples": len(values)}


async def fairness(args: argparse.Namespace) -> dict[str, Any]:
    relay, url = start_server(["-m", "relay", "--port", "0", "--json", "--log-level", "WARNING",
                               *args.relay_args])
    try:
        alone = await quiet_room(url, min(args.flood_seconds, 10.0))
        cpu0 = cpu_s(relay.pid)
        waited0 = run_queue_wait_s(relay.pid)
        bytes0 = await metric(url, "relay_bytes_received_total")
        flooder = await trio.lowlevel.open_process(
            [sys.executable, __file__, "--flood", url, "--flood-pairs", str(args.flood_pairs),
             "--flood-seconds", str(args.flood_seconds),
             "--flood-message-bytes", str(args.flood_message_bytes)],
            stdout=subprocess.PIPE, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        with trio.fail_after(60):
            while await metric(url, "relay_connections") < 2 * args.flood_pairs:  # noqa: ASYNC110 (another process)
                await trio.sleep(0.05)
        flood_start = time.perf_counter()
        under = await quiet_room(url, args.flood_seconds - 1.0)
        flooder_cpu = cpu_s(flooder.pid)
        await flooder.wait()
        cpu = cpu_s(relay.pid) - cpu0
        waited = run_queue_wait_s(relay.pid) - waited0
        received = await metric(url, "relay_bytes_received_total") - bytes0
    finally:
        relay.terminate()
        relay.wait(10)
    settled = [rtt for start, rtt in under if start - flood_start >= args.flood_settle_seconds]
    return {
        "flood_pairs": args.flood_pairs,
        "flood_message_bytes": args.flood_message_bytes,
        "flood_seconds": args.flood_seconds,
        "quiet_round_trip_alone": stats_ms([rtt for _, rtt in alone]),
        "quiet_round_trip_under_flood": stats_ms([rtt for _, rtt in under]),
        f"quiet_round_trip_after_{args.flood_settle_seconds:g}_s": stats_ms(settled or [0.0]),
        "relay_received_mib_per_s": received / args.flood_seconds / 2**20,
        "relay_cpu_share": cpu / args.flood_seconds,
        # Runnable but waiting for a core: the host's share of the latency, not the relay's.
        "relay_run_queue_wait_share": waited / args.flood_seconds,
        "flooders_cpu_share": flooder_cpu / args.flood_seconds,
        "host_load_1min": os.getloadavg()[0],
    }


# --------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> dict[str, Any]:
    relay, url = start_server(["-m", "relay", "--port", "0", "--json", "--log-level", "WARNING",
                               "--max-frames-per-s", "1000000", "--frame-burst", "1000000",
                               "--max-bytes-per-s", "1e12", "--byte-burst", str(1 << 40),
                               "--max-connections-per-address", str(args.idle + 100),
                               "--max-connections", str(args.idle + 100)])
    report: dict[str, Any] = {}
    try:
        report["throughput"] = await throughput(url, relay.pid, args.frames)
        report["idle"] = await idle_connections(url, relay.pid, args.idle)
        cpu0 = cpu_s(relay.pid)
        report["propagation_relay"] = await propagate_relay(url, args.edits)
        report["propagation_relay"]["relay_cpu_us_per_edit"] = (
            (cpu_s(relay.pid) - cpu0) / args.edits * 1e6)
    finally:
        relay.terminate()
        relay.wait(10)
    try:
        import pycrdt.websocket  # noqa: F401
    except ImportError:
        report["propagation_pycrdt"] = (
            "pycrdt-websocket is not installed; for the comparison run: "
            ".venv/bin/pip install pycrdt-websocket")
        return report
    server, purl = start_server([__file__, "--serve-pycrdt"])
    try:
        cpu0 = cpu_s(server.pid)
        report["propagation_pycrdt"] = await propagate_pycrdt(purl, args.edits)
        report["propagation_pycrdt"]["server_cpu_us_per_edit"] = (
            (cpu_s(server.pid) - cpu0) / args.edits * 1e6)
    finally:
        server.terminate()
        server.wait(10)
    report["propagation_ratio"] = (report["propagation_relay"]["edits_per_s"]
                                   / report["propagation_pycrdt"]["edits_per_s"])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--edits", type=int, default=10_000)
    parser.add_argument("--idle", type=int, default=1_000)
    parser.add_argument("--flood-pairs", type=int, default=0,
                        help="measure a quiet room's round trip while N pairs flood (e)")
    parser.add_argument("--flood-seconds", type=float, default=20.0)
    parser.add_argument("--flood-settle-seconds", type=float, default=5.0,
                        help="also report the round trip from this far into the flood")
    parser.add_argument("--flood-message-bytes", type=int, default=64 * 1024)
    parser.add_argument("--relay-args", nargs=argparse.REMAINDER, default=[],
                        help="(e) extra mirror-relay flags, e.g. --max-bytes-per-s 1e9")
    parser.add_argument("--serve-pycrdt", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flood", metavar="URL", help=argparse.SUPPRESS)
    relay_scaleout.add_arguments(parser)
    args = parser.parse_args()
    if args.serve_pycrdt:
        serve_pycrdt()
        return
    if args.flood:
        trio.run(flood, args.flood, args.flood_pairs, args.flood_seconds,
                 args.flood_message_bytes)
        return
    if args.flood_pairs:
        print(json.dumps(trio.run(fairness, args), indent=1))
        return
    if args.scale_out:
        print(json.dumps(trio.run(relay_scaleout.run_scale_out, args), indent=1))
        return
    report = trio.run(run, args)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
