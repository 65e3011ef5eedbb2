"""Real ``mirror-commons`` processes for scale-out tests and benches: several instances
over one database, each on a free loopback port; kill one as a crash would."""

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

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
BEHIND_PROXY = ("--address-requests-per-minute", "1000000",
                "--address-updates-per-minute", "1000000",
                "--max-sessions-per-address", "10000")
"""Behind HAProxy every connection comes from the proxy's address (docs/commons.md)."""


def commons_command() -> list[str]:
    """The installed ``mirror-commons`` next to this Python, else ``-m commons_server``."""
    script = Path(sys.executable).parent / "mirror-commons"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "commons_server"]


@dataclass
class CommonsProcess:
    name: str
    url: str
    server_key: str
    process: trio.Process
    failed: bool = False

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    async def kill(self) -> None:
        """SIGKILL, as a crash: the kernel closes its sockets, nothing is flushed."""
        self.failed = True
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
        with trio.fail_after(STOP_TIMEOUT_S):
            await self.process.wait()

    async def get_json(self, path: str) -> tuple[int, object]:
        async with httpx.AsyncClient(timeout=10) as http:
            answer = await http.get(self.url + path)
        return answer.status_code, answer.json()


async def start_commons(name: str, home: Path, database: str | None,
                        *extra: str) -> CommonsProcess:
    """Start ``mirror-commons --port 0 --json`` on *home* (and *database*); returns
    once it listens."""
    args = [*commons_command(), "--home", str(home), "--host", "127.0.0.1", "--port", "0",
            "--json", "--log-level", "WARNING", *extra]
    if database:
        args += ["--database", database]
    await trio.Path(home).mkdir(parents=True, exist_ok=True)
    log_path = home / f"{name}.log"
    with log_path.open("ab") as log_file:
        process = await trio.lowlevel.open_process(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
            cwd=REPO, env=mirror_env(home),
        )
    try:
        line = await first_line(process, f"commons {name}", START_TIMEOUT_S)
        info = json.loads(line)
        return CommonsProcess(name, info["url"], info.get("server_key", ""), process)
    except AssertionError as exc:
        await _stop(process)
        raise AssertionError(f"{exc}\n{log_path.read_text(errors='replace')}") from None
    except BaseException:
        await _stop(process)  # never left running behind a failed start
        raise


@asynccontextmanager
async def commons_processes(home: Path, database: str | None, names: Sequence[str],
                            *extra: str) -> AsyncIterator[list[CommonsProcess]]:
    """Instances *names* sharing *home*'s server key and documents and *database*;
    stopped (SIGTERM, then SIGKILL) on exit. The first starts alone, so it makes the
    server key and the schemas the others then find."""
    async with AsyncExitStack() as stack:
        fleet: list[CommonsProcess] = []
        for name in names:
            instance = await start_commons(name, home, database, *extra)
            stack.push_async_callback(_stop, instance.process)
            fleet.append(instance)
        yield fleet


async def _stop(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.terminate()
        with trio.move_on_after(STOP_TIMEOUT_S) as waited:
            await process.wait()
        if waited.cancelled_caught:
            process.kill()
            await process.wait()
