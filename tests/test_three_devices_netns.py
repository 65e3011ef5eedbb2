"""Three devices on a LAN of network namespaces: the scenario that found issue 14.

Each device is a home with its own ``mirror serve`` running inside its own
network namespace, on one bridged segment, finding the others by real
discovery (zeroconf on the namespace's interface; nothing touches the machine's
real interfaces). Writers (one-shot ``mirror reflect`` processes, as a script
would run them, two at a time per device) write on every device throughout:
once all three are connected; while one device is unplugged from the segment
until the others have noticed (their sessions with it time out); after it is
plugged back, while another device's ``serve`` is killed (SIGKILL) and started
again; once more after that; and between restarts of all three serves at
once (they then find and dial each other at the same moment, with diverged
journals: duplicate sessions with different catalogues).

Then, within a deadline: every acknowledged write is on every device, the three
journals are identical (ids, texts, mirrorbacks), and no ``serve`` ever exited
on its own (the killed one excepted, which we killed); each stops cleanly.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from node.sync.service import read_status
from tests.helpers import REPO, first_line, mirror_env
from tests.netns_helper import Lan, Namespace, bridged_namespaces, netns_unavailable

PROCESS_DEADLINE_S = 60
CONNECT_DEADLINE_S = 120  # discovery, dialing, and the laptop learning of the phone
PARTITION_DEADLINE_S = 180  # the others notice the phone is gone: idle timeout, 45 s
CONVERGENCE_DEADLINE_S = 300
WRITES_PER_PHASE = 3
WRITERS_PER_DEVICE = 2  # concurrent one-shot writers on each device, beside its serve
RESTARTS = 2  # times all three serves stop, diverge and start again at once
LOOPBACK = ["--listen", "127.0.0.1:0", "--no-discovery"]


async def mirror(home: Path, *args: str) -> tuple[int, str, str]:
    with trio.fail_after(PROCESS_DEADLINE_S):
        result = await trio.run_process(
            [sys.executable, "-m", "node.cli", *args], env=mirror_env(home), cwd=REPO,
            capture_stdout=True, capture_stderr=True, check=False,
        )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def pair(first: Path, joiner: Path, name: str) -> None:
    """Pair over the host's loopback, before the devices move onto the LAN."""
    pairing = await trio.lowlevel.open_process(
        [sys.executable, "-m", "node.cli", "pair", "--json", *LOOPBACK, "--timeout", "60"],
        stdout=subprocess.PIPE, env=mirror_env(first), cwd=REPO,
    )
    offer = json.loads(await first_line(pairing, "pair", PROCESS_DEADLINE_S))
    status, _, err = await mirror(joiner, "join", str(offer["code"]), "--address",
                                  str(offer["address"]), "--no-discovery", "--name", name)
    assert status == 0, err
    with trio.fail_after(PROCESS_DEADLINE_S):
        assert await pairing.wait() == 0


@dataclass
class Device:
    name: str
    home: Path
    ns: Namespace
    serve: trio.Process | None = None
    device_id: str = ""
    starts: int = 0
    stderr: Path | None = None  # of the serve running now
    acknowledged: dict[str, str] = field(default_factory=dict)  # id -> text

    async def start_serve(self) -> None:
        command = self.ns.python("-m", "node.cli", "serve", "--json",
                                 "--listen", f"{self.ns.address}:0",
                                 "--discovery-interface", self.ns.address)
        self.starts += 1
        self.stderr = self.home.parent / f"{self.name}-serve-{self.starts}.stderr"
        with self.stderr.open("wb") as stderr:
            self.serve = await trio.lowlevel.open_process(
                command, stdout=subprocess.PIPE, stderr=stderr, env=mirror_env(self.home),
                cwd=REPO)
        started = json.loads(
            await first_line(self.serve, f"serve on {self.name}", PROCESS_DEADLINE_S))
        assert str(started["address"]).startswith(self.ns.address)
        self.device_id = str(started["device_id"])

    def connected_to(self) -> set[str]:
        """Device ids this device's serve has a session with (its status file)."""
        status = read_status(self.home) or {}
        return {str(p["device_id"]) for p in status.get("peers", []) if p.get("connected")}

    def serve_stderr(self) -> str:
        return self.stderr.read_text(errors="replace")[-2000:] if self.stderr else ""

    def still_serving(self) -> bool:
        return self.serve is not None and self.serve.returncode is None

    async def write(self, label: str) -> None:
        text = f"{label} written on {self.name}"
        status, out, err = await mirror(self.home, "reflect", "--json", text)
        assert status == 0, err
        self.acknowledged[json.loads(out)["id"]] = text

    async def journal(self) -> list[dict[str, Any]]:
        status, out, err = await mirror(self.home, "list", "--json")
        assert status == 0, err
        entries = json.loads(out)
        return sorted(
            ({"id": r["id"], "text": r["text"],
              "mirrorback": (r.get("mirrorback") or {}).get("text")} for r in entries),
            key=lambda r: r["id"],
        )


def assert_serving(devices: list[Device]) -> None:
    """No serve has exited by itself (what it said on stderr if one has)."""
    exited = [(d.name, d.serve_stderr()) for d in devices if not d.still_serving()]
    assert exited == [], exited


async def stop_serves(devices: list[Device]) -> None:
    """SIGTERM every serve; each must exit 0 (it had not exited by itself)."""
    assert_serving(devices)
    for device in devices:
        assert device.serve is not None
        device.serve.send_signal(signal.SIGTERM)
    for device in devices:
        assert device.serve is not None
        with trio.fail_after(PROCESS_DEADLINE_S):
            status = await device.serve.wait()
        assert status == 0, (device.name, status, device.serve_stderr())


async def write_phase(devices: list[Device], phase: str) -> None:
    async with trio.open_nursery() as nursery:
        for device in devices:
            for writer in range(WRITERS_PER_DEVICE):
                async def writes(device: Device = device, writer: int = writer) -> None:
                    for i in range(WRITES_PER_PHASE):
                        await device.write(f"{phase} {writer}.{i}")
                nursery.start_soon(writes)


async def until(condition: Callable[[], bool], deadline_s: float, devices: list[Device],
                what: str, writing: Sequence[Device] = ()) -> None:
    """Wait for *condition* (the devices' status files), writing on *writing* meanwhile."""
    with trio.move_on_after(deadline_s):
        n = 0
        while not condition():
            assert_serving(devices)
            for device in writing:
                await device.write(f"{what} {n}")
            n += 1
            if not writing:
                await trio.sleep(0.5)  # waiting on a condition other processes change
        return
    raise AssertionError(f"not {what} within {deadline_s} s: "
                         f"{ {d.name: sorted(d.connected_to()) for d in devices} }")


async def converged(devices: list[Device]) -> list[dict[str, Any]] | None:
    """The common journal, once every device holds every acknowledged write."""
    wanted = {rid for d in devices for rid in d.acknowledged}
    journals = [await d.journal() for d in devices]
    if any({r["id"] for r in j} != wanted for j in journals):
        return None
    if any(j != journals[0] for j in journals[1:]):
        return None
    return journals[0]


async def scenario(lan: Lan, tmp_path: Path) -> None:
    devices = [Device(name, tmp_path / name, ns)
               for name, ns in zip(("desk", "laptop", "phone"), lan.hosts, strict=True)]
    desk, laptop, phone = devices
    await pair(desk.home, laptop.home, laptop.name)
    await pair(desk.home, phone.home, phone.name)
    for device in devices:
        status, _, err = await mirror(device.home, "share", "journal", "--class", "devices")
        assert status == 0, err
    for device in devices:
        await device.start_serve()
    try:
        def everyone_connected() -> bool:
            return all(d.connected_to() >= {o.device_id for o in devices if o is not d}
                       for d in devices)

        await until(everyone_connected, CONNECT_DEADLINE_S, devices, "connected")
        await write_phase(devices, "together")
        lan.cut(phone.ns)  # the phone leaves the LAN; everyone goes on writing

        def phone_gone() -> bool:
            return all(phone.device_id not in d.connected_to() for d in (desk, laptop))

        await until(phone_gone, PARTITION_DEADLINE_S, devices, "apart", writing=devices)
        lan.heal(phone.ns)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_phase, devices, "healed")
            assert laptop.serve is not None
            await laptop.write("just before the kill")
            laptop.serve.send_signal(signal.SIGKILL)
            assert await laptop.serve.wait() == -signal.SIGKILL
            await laptop.write("while its serve is down")
            await laptop.start_serve()
        await write_phase(devices, "after")
        # All three stop, diverge, and start again at once: they find each other at
        # the same moment, dial each other, and resolve duplicate sessions with
        # different catalogues (the crash of issue 14).
        for restart in range(RESTARTS):
            await stop_serves(devices)
            await write_phase(devices, f"restart {restart}")
            async with trio.open_nursery() as nursery:
                for device in devices:
                    nursery.start_soon(device.start_serve)

        journal = None
        last_write = trio.current_time()
        with trio.move_on_after(CONVERGENCE_DEADLINE_S):
            while journal is None:
                assert_serving(devices)
                journal = await converged(devices)
                if journal is None:
                    await trio.sleep(1)  # waiting on a condition other processes change
        assert journal is not None, {d.name: len(await d.journal()) for d in devices}
        acknowledged = {rid: text for d in devices for rid, text in d.acknowledged.items()}
        assert {r["id"]: r["text"] for r in journal} == acknowledged
        phases = 3 + RESTARTS
        assert len(acknowledged) >= len(devices) * phases * WRITERS_PER_DEVICE * WRITES_PER_PHASE
        print(f"{len(acknowledged)} acknowledged writes on 3 devices; identical journals "
              f"{trio.current_time() - last_write:.0f} s after the last write")
        assert_serving(devices)
    finally:
        for device in devices:
            if device.serve is not None and device.serve.returncode is None:
                device.serve.send_signal(signal.SIGTERM)
        for device in devices:
            if device.serve is not None:
                with trio.fail_after(PROCESS_DEADLINE_S):
                    await device.serve.wait()
    for device in devices:
        assert device.serve is not None
        assert device.serve.returncode == 0, (device.name, device.serve.returncode,
                                              device.serve_stderr())
        log = (device.home / "logs" / "mirror.log").read_text(encoding="utf-8")
        bad = [line for line in log.splitlines()
               if "Traceback" in line or "AssertionError" in line or "internal error" in line]
        assert bad == [], (device.name, bad)


@pytest.mark.slow
async def test_three_devices_partition_kill_and_converge(tmp_path: Path) -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    with bridged_namespaces(3) as lan:
        await scenario(lan, tmp_path)
