"""Scale-out figures for the relay: ``bench/relay.py --scale-out`` (bounded; stops by itself).

    .venv/bin/python bench/relay.py --scale-out [--rooms 12] [--frames 30000]
                                                [--rounds 3] [--resume-rounds 5]

Three ``mirror-relay`` processes and Debian's HAProxy running the configuration
of docs/relay.md as written (bind and server lines on loopback; needs
``haproxy`` on PATH, e.g. ``apt-get install haproxy``).

(a) frames/s of 1 KiB messages through --rooms rooms at once (a sender and a
    receiver in each, sending as fast as they can: the latency under that load
    is mostly queueing), then the one-way latency of single frames sent one at
    a time (what each hop adds), four ways in the same run, alternated
    --rounds times (medians reported):
      direct-1   clients to one relay instance, no proxy;
      haproxy-1  through HAProxy with that one instance behind it;
      haproxy-3  through HAProxy with three instances;
      clients-3  no proxy, each client ranks the three itself (rendezvous hashing);
    and the CPU each part spent per frame (relays, HAProxy, the clients = this
    process), from /proc, with what one CPU-second carries (server side, and
    the whole path with the clients). The cost of HAProxy itself is haproxy-1
    against direct-1: the throughput ratio, HAProxy's CPU per frame, and the
    ratio of server-side frames per CPU-second.
(b) time to resume: four devices of one person (six pair rooms, real stores and
    sync sessions, node's reconnect logic) through HAProxy with three instances,
    and with the three listed on the devices; the instance holding most rooms
    is SIGKILLed (killed), SIGTERMed (stopped, as for a restart: it closes its
    connections with 1001) or, behind HAProxy, SIGSTOPped (hung: its
    connections stay open); for each device link of its rooms, the time from
    then to a new session having caught up.
    --resume-rounds fresh set-ups per way.

Every part runs on this one machine: with its 2 cores the relays, HAProxy and
the clients share them, so (a) shows where the CPU goes rather than what three
machines would carry.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import trio
from httpx_ws import aconnect_ws

from node.sync.relay import rank_relays, room_url
from tests.haproxy_helper import HAProxy, Server, fenced_block, haproxy_unavailable, run_haproxy
from tests.relay_links import Link, links_of
from tests.relay_processes import RelayProcess, relay_processes
from tests.sync_helpers import open_devices, wait_for, write_seeded_keyrings

REPO = Path(__file__).resolve().parent.parent
FRAME = 1024
CLK = os.sysconf("SC_CLK_TCK")
INSTANCES = ("r1", "r2", "r3")
UNLIMITED = ("--max-frames-per-s", "1000000", "--frame-burst", "1000000",
             "--max-bytes-per-s", "1e12", "--byte-burst", str(1 << 40),
             "--max-connections-per-address", "100000", "--max-connections", "100000")
DEVICES = ["laptop", "phone", "tablet", "desktop"]
RESUME_DEADLINE_S = 60.0
TRANSFER_DEADLINE_S = 300.0

Entry = Callable[[bytes], str]
"""The WebSocket URL a client uses for a room."""


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def documented_config() -> str:
    return fenced_block(REPO / "docs" / "relay.md", "haproxy", "backend relays")


# --------------------------------------------------------------------------- (a)


async def transfer(entry: Entry, rooms: int, frames: int) -> dict[str, Any]:
    """*frames* 1 KiB frames split over *rooms* rooms, all at once."""
    ids = [hashlib.sha256(f"scale-out {i}".encode()).digest() for i in range(rooms)]
    per_room = frames // rooms
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http, \
            AsyncExitStack() as stack:
        pairs = []
        for room in ids:
            url = entry(room)
            receiver = await stack.enter_async_context(aconnect_ws(url, http))
            sender = await stack.enter_async_context(
                aconnect_ws(url, http, max_message_size_bytes=1 << 20))
            await receiver.receive_text()  # present 0
            await sender.receive_text()  # present 1
            await receiver.receive_text()  # joined 1
            pairs.append((sender, receiver))

        async def send(sender: Any) -> None:
            for _ in range(per_room):
                await sender.send_bytes(time.perf_counter().hex().encode().ljust(FRAME, b"."))

        async def receive(receiver: Any) -> None:
            got, buffer = 0, b""
            while got < per_room:
                buffer += await receiver.receive_bytes()
                now = time.perf_counter()
                end = len(buffer) - len(buffer) % FRAME  # the relay merges queued frames
                for at in range(0, end, FRAME):
                    stamp = buffer[at:at + 32].rstrip(b".")
                    latencies.append(now - float.fromhex(stamp.decode()))
                    got += 1
                buffer = buffer[end:]

        start = time.perf_counter()
        with trio.fail_after(TRANSFER_DEADLINE_S):
            async with trio.open_nursery() as nursery:
                for sender, receiver in pairs:
                    nursery.start_soon(receive, receiver)
                    nursery.start_soon(send, sender)
        elapsed = time.perf_counter() - start
    return {"frames": per_room * rooms, "seconds": elapsed,
            "frames_per_s": per_room * rooms / elapsed,
            "latency_p50_ms": pct(latencies, 0.5) * 1e3,
            "latency_p99_ms": pct(latencies, 0.99) * 1e3}


async def idle_latency(entry: Entry, count: int = 500) -> dict[str, float]:
    """One-way latency of single 1 KiB frames, one at a time (what a hop adds)."""
    url = entry(hashlib.sha256(b"scale-out idle latency").digest())
    latencies = []
    async with httpx.AsyncClient(timeout=30) as http, aconnect_ws(url, http) as b, \
            aconnect_ws(url, http) as a:
        await b.receive_text()
        await a.receive_text()
        await b.receive_text()
        for _ in range(count):
            start = time.perf_counter()
            await a.send_bytes(b"." * FRAME)
            await b.receive_bytes()
            latencies.append(time.perf_counter() - start)
    return {"idle_latency_p50_ms": pct(latencies, 0.5) * 1e3,
            "idle_latency_p99_ms": pct(latencies, 0.99) * 1e3}


async def measured(entry: Entry, rooms: int, frames: int, relays: Sequence[RelayProcess],
                   proxy: HAProxy | None) -> dict[str, Any]:
    """:func:`transfer`, with the CPU per frame of each part."""
    pids = {"relays": [r.process.pid for r in relays],
            "haproxy": [proxy.process.pid] if proxy else [],
            "clients": [os.getpid()]}
    before = {part: sum(cpu_s(p) for p in ps) for part, ps in pids.items()}
    result = await transfer(entry, rooms, frames)
    for part, ps in pids.items():
        spent = sum(cpu_s(p) for p in ps) - before[part]
        result[f"{part}_cpu_us_per_frame"] = spent / result["frames"] * 1e6
    # What a fixed CPU budget carries, whatever share of the machine this run got:
    # on a shared machine frames/s follows how many runnable processes a way has.
    server = result["relays_cpu_us_per_frame"] + result["haproxy_cpu_us_per_frame"]
    result["server_frames_per_cpu_s"] = 1e6 / server if server else 0.0
    whole = server + result["clients_cpu_us_per_frame"]
    result["path_frames_per_cpu_s"] = 1e6 / whole if whole else 0.0
    result.update(await idle_latency(entry))
    return result


async def throughput(args: Any, home: Path) -> dict[str, Any]:
    rounds: dict[str, list[dict[str, Any]]] = {}
    async with relay_processes(home, INSTANCES, *UNLIMITED) as relays, \
            run_haproxy(documented_config(), [Server(r.name, r.address) for r in relays]) \
            as proxy3, \
            run_haproxy(documented_config(), [Server("r1", relays[0].address)]) as proxy1:
        urls = [r.url for r in relays]
        ways: dict[str, tuple[Entry, list[RelayProcess], HAProxy | None]] = {
            "direct-1": (lambda room: room_url(urls[0], room), relays[:1], None),
            "haproxy-1": (lambda room: room_url(proxy1.url, room), relays[:1], proxy1),
            "haproxy-3": (lambda room: room_url(proxy3.url, room), relays, proxy3),
            "clients-3": (lambda room: room_url(rank_relays(urls, room)[0], room), relays,
                          None),
        }
        for entry, _, _ in ways.values():  # warm up: connections, caches, the JIT-less rest
            await transfer(entry, args.rooms, args.rooms * 100)
        for _ in range(args.rounds):  # alternated, so drift on a shared machine hits all
            for name, (entry, used, proxy) in ways.items():
                result = await measured(entry, args.rooms, args.frames, used, proxy)
                rounds.setdefault(name, []).append(result)
        spread = Counter(rank_relays(urls, hashlib.sha256(f"scale-out {i}".encode()).digest())[0]
                         for i in range(args.rooms))
    report: dict[str, Any] = {
        name: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for name, results in rounds.items()
    }
    report["clients-3"]["rooms_per_instance"] = sorted(spread.values())
    direct, proxied = report["direct-1"], report["haproxy-1"]
    report["haproxy_cost"] = {
        "throughput_ratio_haproxy_over_direct": proxied["frames_per_s"] / direct["frames_per_s"],
        "haproxy_cpu_us_per_frame": proxied["haproxy_cpu_us_per_frame"],
        "haproxy_cpu_over_relay_cpu": (proxied["haproxy_cpu_us_per_frame"]
                                       / proxied["relays_cpu_us_per_frame"]),
        "server_frames_per_cpu_s_ratio_haproxy_over_direct": (
            proxied["server_frames_per_cpu_s"] / direct["server_frames_per_cpu_s"]),
        "idle_latency_p50_added_ms": (proxied["idle_latency_p50_ms"]
                                      - direct["idle_latency_p50_ms"]),
    }
    report["three_over_one_instance"] = (report["haproxy-3"]["frames_per_s"]
                                         / report["haproxy-1"]["frames_per_s"])
    return report


# --------------------------------------------------------------------------- (b)


async def resume_once(home: Path, through_proxy: bool, how: str, seed: int) -> list[float]:
    """Seconds from the failure (*how*: killed, hung, stopped) to each moved link's
    new session having caught up."""
    async with relay_processes(home / "relays", INSTANCES, *UNLIMITED) as relays, \
            run_haproxy(documented_config(), [Server(r.name, r.address) for r in relays]) \
            as proxy:
        write_seeded_keyrings(home / "devices", DEVICES, seed=seed)
        async with open_devices(home / "devices", DEVICES) as devices:
            links = links_of(devices, [proxy.url] if through_proxy else [r.url for r in relays])
            async with trio.open_nursery() as nursery:
                for link in links:
                    nursery.start_soon(link.run)
                await wait_for(lambda: all(link.in_session() for link in links),
                               deadline_s=RESUME_DEADLINE_S)
                held = {r.name: await r.rooms() for r in relays}
                victim = max(relays, key=lambda r: held[r.name])
                before = {id(link): link.stats.connects for link in links}
                sessions = {id(link): len(link.sessions) for link in links}
                killed_at = trio.current_time()
                await {"killed": victim.kill, "hung": victim.hang, "stopped": victim.stop}[how]()

                def moved() -> list[Link]:
                    return [link for link in links if link.stats.connects > before[id(link)]]

                def resumed() -> bool:
                    return (len(moved()) == 2 * held[victim.name]
                            and all(link.in_session() and len(link.caught_up_at) > 1
                                    and len(link.sessions) > sessions[id(link)]
                                    for link in moved()))

                await wait_for(resumed, deadline_s=RESUME_DEADLINE_S)
                nursery.cancel_scope.cancel()
            return [link.caught_up_at[-1] - killed_at for link in moved()]


async def resume(args: Any, home: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    ways = (("haproxy-3", "killed"), ("clients-3", "killed"), ("haproxy-3", "stopped"),
            ("clients-3", "stopped"), ("haproxy-3", "hung"))
    for through, how in ways:
        name = f"{through} {how}"
        times: list[float] = []
        for round_ in range(args.resume_rounds):
            times += await resume_once(home / f"{through}-{how}-{round_}",
                                       through == "haproxy-3", how, seed=round_)
        report[name] = {"links": len(times), "rounds": args.resume_rounds,
                        "p50_s": statistics.median(times), "max_s": max(times),
                        "min_s": min(times)}
    return report


# --------------------------------------------------------------------------- main


async def run_scale_out(args: Any) -> dict[str, Any]:
    reason = haproxy_unavailable()
    if reason:
        raise SystemExit(f"bench/relay.py --scale-out: {reason}")
    with tempfile.TemporaryDirectory(prefix="relay-scale") as folder:
        home = Path(folder)
        report = {"throughput": await throughput(args, home / "throughput")}
        if args.resume_rounds > 0:
            report["resume_after_kill"] = await resume(args, home / "resume")
        return report


def add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("--scale-out")
    group.add_argument("--scale-out", action="store_true",
                       help="three instances behind HAProxy; see bench/relay_scaleout.py")
    group.add_argument("--rooms", type=int, default=12)
    group.add_argument("--rounds", type=int, default=3)
    group.add_argument("--resume-rounds", type=int, default=5, help="0: skip part (b)")
