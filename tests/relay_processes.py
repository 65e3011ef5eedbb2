"""Real ``mirror-relay`` processes for scale-out tests: start on a free loopback
port, read their metrics, kill one as a crash would."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from tests.helpers import REPO, first_line, mirror_env

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def relay_command() -> list[str]:
    """The installed ``mirror-relay`` script next to this Python, else ``-m relay``."""
    script = Path(sys.executable).parent / "mirror-relay"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "relay"]


@dataclass
class RelayProcess:
    """One relay instance: its URL and its process."""

    name: str
    url: str
    process: trio.Process
    failed: bool = False
    """Killed or hung by the test: it serves nobody any more."""

    @property
    def address(self) -> str:
        """``host:port``, as a proxy's server line wants it."""
        return self.url.removeprefix("http://")

    @property
    def serving(self) -> bool:
        return self.process.returncode is None and not self.failed

    async def metrics(self) -> dict[str, float]:
        """The relay's Prometheus gauges and counters (labels kept in the name)."""
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(self.url + "/metrics")).text
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    async def rooms(self) -> int:
        return int((await self.metrics())["relay_rooms"])

    async def connections(self) -> int:
        return int((await self.metrics())["relay_connections"])

    async def kill(self) -> None:
        """SIGKILL: the instance vanishes as in a crash (the kernel closes its sockets)."""
        self.failed = True
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        with trio.fail_after(STOP_TIMEOUT_S):
            await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM, as systemd stops it for a restart: connections closed with 1001."""
        self.failed = True
        self.process.terminate()
        with trio.fail_after(STOP_TIMEOUT_S):
            assert await self.process.wait() == 0

    async def hang(self) -> None:
        """SIGSTOP: the instance stops answering but its connections stay open (the
        kernel still accepts and acknowledges), as a wedged process or machine."""
        self.failed = True
        self.process.send_signal(signal.SIGSTOP)
        await trio.lowlevel.checkpoint()


async def start_relay(name: str, home: Path, *extra: str) -> RelayProcess:
    """Start ``mirror-relay --port 0 --json`` and return once it listens."""
    process = await trio.lowlevel.open_process(
        [*relay_command(), "--host", "127.0.0.1", "--port", "0", "--json",
         "--log-level", "WARNING", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        cwd=REPO, env=mirror_env(home),
    )
    line = await first_line(process, f"relay {name}", START_TIMEOUT_S)
    return RelayProcess(name, json.loads(line)["url"], process)


class RelayFleet(list[RelayProcess]):
    """The instances of :func:`relay_processes`; a failed one can be restarted."""

    def __init__(self, home: Path, extra: Sequence[str], stack: AsyncExitStack) -> None:
        super().__init__()
        self._home, self._extra, self._stack = home, tuple(extra), stack

    async def start(self, name: str, *port: str) -> RelayProcess:
        relay = await start_relay(name, self._home / name, *self._extra, *port)
        self._stack.push_async_callback(_stop, relay.process)
        return relay

    async def restart(self, relay: RelayProcess) -> RelayProcess:
        """Start *relay* again on its port (as systemd's Restart= would), in its place."""
        if relay.process.returncode is None:
            await relay.kill()
        port = relay.url.rsplit(":", 1)[1]
        again = await self.start(relay.name, "--port", port)
        self[self.index(relay)] = again
        return again


@asynccontextmanager
async def relay_processes(
    home: Path, names: Sequence[str], *extra: str
) -> AsyncIterator[RelayFleet]:
    """Several relay instances, stopped (SIGTERM, then SIGKILL) on exit."""
    async with AsyncExitStack() as stack:
        fleet = RelayFleet(home, extra, stack)
        for name in names:
            fleet.append(await fleet.start(name))
        yield fleet


async def _stop(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.terminate()
            process.send_signal(signal.SIGCONT)  # a hung instance takes its SIGTERM now
        with trio.move_on_after(STOP_TIMEOUT_S) as waited:
            await process.wait()
        if waited.cancelled_caught:
            process.kill()
            await process.wait()
