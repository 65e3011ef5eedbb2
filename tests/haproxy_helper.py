"""A real HAProxy (Debian's ``haproxy``) in front of real servers, on loopback.

For tests and benches that put several instances of a server behind one proxy.
The configuration is the operator's own (usually a fenced block of a doc, so
the test runs exactly what the doc tells an operator to run), with three
changes that keep it on this machine and observable:

- every ``bind`` line of the template becomes one ``bind fd@N``: the listening
  socket is bound by this process to 127.0.0.1 port 0 and handed to HAProxy,
  so there is no port to guess and no race for one;
- the ``server`` lines of the backend are replaced by the given loopback
  servers, each keeping the options written after the address on the
  template's first server line (``check``, ``weight``, ...);
- ``global`` gains an admin ``stats socket`` in a private temporary directory,
  through which a test reads the servers' states (UP, DOWN, ...) and waits for
  HAProxy to see a change instead of sleeping.

HAProxy runs in the foreground (``-db``); its stderr (alerts such as "Server
relays/r1 is DOWN") goes to a file shown when it fails to start.

Use::

    reason = haproxy_unavailable()
    if reason: pytest.skip(reason)
    template = fenced_block(REPO / "docs/relay.md", "haproxy", "backend relays")
    async with run_haproxy(template, [Server("r1", "127.0.0.1:8001"), ...]) as proxy:
        ... proxy.url ...   # http://127.0.0.1:PORT
        await proxy.wait_for_state("r1", "DOWN")
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

HAPROXY_PATHS = ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy")
START_TIMEOUT_S = 10.0  # from exec to the stats socket answering
STOP_TIMEOUT_S = 10.0
STATE_POLL_S = 0.05  # HAProxy is another process: its state is polled, not awaited
LISTEN_BACKLOG = 1024
_FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


class HAProxyError(Exception):
    """HAProxy could not be started or refused its configuration."""


@dataclass(frozen=True)
class Server:
    """One backend server: HAProxy's name for it and its loopback ``host:port``."""

    name: str
    address: str


def haproxy_binary() -> str | None:
    found = shutil.which("haproxy")
    if found:
        return found
    return next((p for p in HAPROXY_PATHS if Path(p).is_file()), None)


def haproxy_unavailable() -> str | None:
    """Why HAProxy tests cannot run here, or None if they can."""
    binary = haproxy_binary()
    if binary is None:
        return ("no haproxy on this machine (Debian: apt-get install haproxy; "
                ".ci/run installs it when run as root)")
    try:
        subprocess.run([binary, "-v"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{binary} does not run: {exc}"
    return None


def fenced_block(markdown: Path, language: str, containing: str) -> str:
    """The first ```language fenced block of *markdown* that contains *containing*."""
    for fence_language, block in _FENCE.findall(markdown.read_text(encoding="utf-8")):
        if fence_language == language and containing in block:
            return str(block)
    raise LookupError(f"{markdown}: no ```{language} block containing {containing!r}")


def loopback_config(
    template: str, servers: Sequence[Server], *, listen_fd: int, stats_socket: Path
) -> str:
    """*template* bound to *listen_fd*, serving *servers*, with a stats socket.

    The template must have exactly one backend with ``server`` lines; all its
    ``bind`` lines collapse into one on the inherited descriptor.
    """
    out: list[str] = []
    bound = False
    server_options: str | None = None
    backends = 0
    has_global = False
    for line in template.splitlines():
        words = line.split("#", 1)[0].split()
        indent = line[: len(line) - len(line.lstrip())]
        if words[:1] == ["global"]:
            has_global = True
            out.append(line)
            out.append(f"    stats socket {stats_socket} mode 600 level admin")
            continue
        if words[:1] == ["backend"]:
            backends += 1
        if words[:1] == ["bind"]:
            if not bound:
                out.append(f"{indent}bind fd@{listen_fd}")
                bound = True
            continue
        if words[:1] == ["server"]:
            if server_options is None:
                server_options = " ".join(words[3:])
                out.extend(f"{indent}server {s.name} {s.address} {server_options}".rstrip()
                           for s in servers)
            continue
        out.append(line)
    if not bound or server_options is None or backends != 1:
        raise ValueError("the template needs a bind line and one backend with server lines")
    if not has_global:
        out[:0] = ["global", f"    stats socket {stats_socket} mode 600 level admin"]
    return "\n".join(out) + "\n"


def check_config(template: str, servers: Sequence[Server]) -> str:
    """``haproxy -c`` on *template* as :func:`run_haproxy` would run it: the
    output (warnings included); raises :class:`HAProxyError` if refused."""
    binary = haproxy_binary()
    if binary is None:
        raise HAProxyError("no haproxy binary")
    with tempfile.TemporaryDirectory(prefix="hap") as folder, _loopback_listener() as listener:
        path = Path(folder) / "haproxy.cfg"
        path.write_text(loopback_config(template, servers, listen_fd=listener.fileno(),
                                        stats_socket=Path(folder) / "admin.sock"),
                        encoding="utf-8")
        result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True,
                                text=True, timeout=30, check=False,
                                pass_fds=(listener.fileno(),))
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise HAProxyError(f"haproxy refused the configuration:\n{output}")
    return output


def _loopback_listener() -> socket.socket:
    """A TCP socket listening on 127.0.0.1, on a port the kernel picked."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


class HAProxy:
    """A running HAProxy: its URL, its process and its admin socket."""

    def __init__(self, url: str, process: trio.Process, stats_socket: Path,
                 log_path: Path, config: str) -> None:
        self.url = url
        self.process = process
        self.stats_socket = stats_socket
        self.log_path = log_path
        self.config = config

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    async def command(self, line: str) -> str:
        """One command on the admin socket (``show stat``, ``disable server b/s``...)."""
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock:
            await sock.connect(str(self.stats_socket))
            await sock.send((line + "\n").encode())
            chunks = []
            while chunk := await sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    async def server_stats(self, column: str) -> dict[str, str]:
        """One column of ``show stat`` for each backend server (``status``, ``stot``...)."""
        lines = (await self.command("show stat")).splitlines()
        if not lines or not lines[0].startswith("# "):
            raise HAProxyError(f"unexpected answer to 'show stat': {lines[:1]}")
        header = lines[0][2:].split(",")
        name, wanted = header.index("svname"), header.index(column)
        values = {}
        for row in lines[1:]:
            fields = row.split(",")
            if len(fields) > wanted and fields[name] not in ("FRONTEND", "BACKEND", ""):
                values[fields[name]] = fields[wanted]
        return values

    async def server_states(self) -> dict[str, str]:
        """Each backend server's status as HAProxy sees it (``UP``, ``DOWN``, ...)."""
        return await self.server_stats("status")

    async def sessions_total(self) -> dict[str, int]:
        """Connections HAProxy has sent to each server so far (health checks excluded)."""
        return {name: int(value or 0) for name, value in (await self.server_stats("stot")).items()}

    async def wait_for_state(self, server: str, state: str, deadline_s: float = 20) -> None:
        """Wait until HAProxy reports *server* as *state* (e.g. ``DOWN``), bounded."""
        with trio.fail_after(deadline_s):
            while True:
                if (await self.server_states()).get(server, "").startswith(state):
                    return
                await trio.sleep(STATE_POLL_S)  # another process: nothing to await


@asynccontextmanager
async def run_haproxy(template: str, servers: Sequence[Server]) -> AsyncIterator[HAProxy]:
    """Run HAProxy with *template* (see :func:`loopback_config`) until the block exits."""
    binary = haproxy_binary()
    if binary is None:
        raise HAProxyError("no haproxy binary")
    # A short private directory: a unix socket path must fit in 108 bytes.
    folder = Path(tempfile.mkdtemp(prefix="hap"))
    listener = _loopback_listener()
    try:
        port = listener.getsockname()[1]
        stats_socket = folder / "admin.sock"
        config = loopback_config(template, servers, listen_fd=listener.fileno(),
                                 stats_socket=stats_socket)
        (folder / "haproxy.cfg").write_text(config, encoding="utf-8")
        log_path = folder / "haproxy.log"
        with log_path.open("wb") as log_file:
            process = await trio.lowlevel.open_process(
                [binary, "-db", "-f", str(folder / "haproxy.cfg")],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                pass_fds=(listener.fileno(),),
            )
        listener.close()  # HAProxy holds its own copy
        proxy = HAProxy(f"http://127.0.0.1:{port}", process, stats_socket, log_path, config)
        try:
            await _wait_started(proxy)
            yield proxy
        finally:
            await _stop(process)
    finally:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)


async def _wait_started(proxy: HAProxy) -> None:
    with trio.move_on_after(START_TIMEOUT_S):
        while proxy.process.returncode is None:
            try:
                await proxy.server_states()
                return
            except OSError:  # the socket is not there yet
                await trio.sleep(STATE_POLL_S)
    raise HAProxyError(f"haproxy did not start (exit {proxy.process.returncode}):\n"
                       f"{proxy.log()}")


async def _stop(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):  # also when the test failed or was cancelled
        if process.returncode is None:
            process.terminate()
        with trio.move_on_after(STOP_TIMEOUT_S) as waited:
            await process.wait()
        if waited.cancelled_caught:
            process.kill()
            await process.wait()
