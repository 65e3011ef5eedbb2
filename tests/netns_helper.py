"""Two network namespaces joined by a veth pair, for LAN tests that must not touch
the machine's real interfaces.

Each namespace gets one end of the veth pair with an address in 10.200.N.0/24
(N random per pair) that exists only inside the namespace, plus its own
loopback. Multicast sent there stays between the two namespaces. Names carry
the pid and a random token, so concurrent test runs never share or delete each
other's namespaces; everything is removed on exit, also after a failure.

Use::

    reason = netns_unavailable()
    if reason: pytest.skip(reason)
    with veth_namespace_pair() as pair:
        cmd = pair.a.command(sys.executable, "-c", "...")   # runs inside A
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IP_TIMEOUT_S = 10


@dataclass(frozen=True)
class Namespace:
    name: str
    interface: str
    address: str  # inside this namespace only

    def command(self, *argv: str) -> list[str]:
        """argv run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def python(self, *argv: str) -> list[str]:
        return self.command(sys.executable, *argv)


@dataclass(frozen=True)
class NamespacePair:
    a: Namespace
    b: Namespace


def python_env(**extra: str) -> dict[str, str]:
    """Environment for a Python child that imports this repository."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )


def _ip_ok(*args: str) -> None:
    result = _ip(*args)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` command is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"mirror-probe-{os.getpid()}-{secrets.token_hex(3)}"
    result = _ip("netns", "add", probe)
    if result.returncode != 0:
        return f"`ip netns add` failed: {result.stderr.strip() or result.returncode}"
    _ip("netns", "del", probe)
    return None


def _run_all(commands: Sequence[Sequence[str]]) -> None:
    for args in commands:
        _ip_ok(*args)


@contextmanager
def veth_namespace_pair() -> Iterator[NamespacePair]:
    """Namespaces A and B joined by a veth pair, deleted on exit."""
    token = f"{os.getpid() % 10000}{secrets.token_hex(2)}"
    subnet = random.Random().randint(1, 254)
    a = Namespace(f"mirror-a-{token}", f"mva{token}"[:15], f"10.200.{subnet}.1")
    b = Namespace(f"mirror-b-{token}", f"mvb{token}"[:15], f"10.200.{subnet}.2")
    created: list[str] = []
    try:
        for ns in (a, b):
            _ip_ok("netns", "add", ns.name)
            created.append(ns.name)
        # Created inside A, so the pair never exists in the host namespace.
        _ip_ok(
            "-n", a.name, "link", "add", a.interface, "type", "veth", "peer", "name", b.interface
        )
        _ip_ok("-n", a.name, "link", "set", b.interface, "netns", b.name)
        for ns in (a, b):
            _run_all(
                [
                    ("-n", ns.name, "addr", "add", f"{ns.address}/24", "dev", ns.interface),
                    ("-n", ns.name, "link", "set", "lo", "up"),
                    ("-n", ns.name, "link", "set", ns.interface, "up"),
                ]
            )
        yield NamespacePair(a, b)
    finally:
        for name in created:
            # Deleting a namespace also destroys the veth end inside it.
            _ip("netns", "del", name)


@dataclass(frozen=True)
class Lan:
    """Namespaces on one Ethernet segment: each joined by a veth pair to a bridge
    in a namespace of its own (the switch). Multicast (mDNS) reaches them all."""

    switch: str
    hosts: tuple[Namespace, ...]
    ports: tuple[str, ...]  # each host's port on the bridge, in the switch namespace

    def _port(self, host: Namespace) -> str:
        return self.ports[self.hosts.index(host)]

    def cut(self, host: Namespace) -> None:
        """Unplug *host*: nothing reaches it or leaves it until :meth:`heal`."""
        _ip_ok("-n", self.switch, "link", "set", self._port(host), "down")

    def heal(self, host: Namespace) -> None:
        _ip_ok("-n", self.switch, "link", "set", self._port(host), "up")


@contextmanager
def bridged_namespaces(count: int) -> Iterator[Lan]:
    """*count* namespaces on one bridged segment (10.201.N.0/24), deleted on exit."""
    token = f"{os.getpid() % 10000}{secrets.token_hex(2)}"
    subnet = random.Random().randint(1, 254)
    switch = f"mirror-sw-{token}"
    hosts = tuple(
        Namespace(f"mirror-h{i}-{token}", f"mh{i}{token}"[:15], f"10.201.{subnet}.{i + 1}")
        for i in range(count)
    )
    ports = tuple(f"ms{i}{token}"[:15] for i in range(count))
    created: list[str] = []
    try:
        for name in (switch, *(h.name for h in hosts)):
            _ip_ok("netns", "add", name)
            created.append(name)
        _run_all([
            ("-n", switch, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"),
            ("-n", switch, "link", "set", "br0", "up"),
        ])
        for host, port in zip(hosts, ports, strict=True):
            # Created inside the switch, so no end ever exists in the host namespace.
            _run_all([
                ("-n", switch, "link", "add", port, "type", "veth", "peer", "name",
                 host.interface),
                ("-n", switch, "link", "set", host.interface, "netns", host.name),
                ("-n", switch, "link", "set", port, "master", "br0"),
                ("-n", switch, "link", "set", port, "up"),
                ("-n", host.name, "addr", "add", f"{host.address}/24", "dev", host.interface),
                ("-n", host.name, "link", "set", "lo", "up"),
                ("-n", host.name, "link", "set", host.interface, "up"),
            ])
        yield Lan(switch, hosts, ports)
    finally:
        for name in created:
            _ip("netns", "del", name)
