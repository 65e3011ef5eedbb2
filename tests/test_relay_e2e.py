"""End to end with real processes: a relay, two homes with LAN discovery off,
pairing by code through the relay, a reflection on A appears on B."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import trio

from tests.helpers import REPO, MirrorProcess, mirror_env, start_mirror, stop_mirror
from tests.sync_helpers import wait_for
from tests.test_sync_e2e import has, mirror

NO_LAN = ["--listen", "127.0.0.1:0", "--no-discovery"]
CANARY = "RELAY-E2E-CANARY-7d1f"


async def pair_and_serve_through_relay(
    a: Path, b: Path, url: str, b_name: str, serving: list[MirrorProcess]
) -> None:
    """Homes *a* and *b* with only the relay at *url* (no LAN): pair them through
    it, share the journal, start ``mirror serve`` on both (appended to *serving*)."""
    for home in (a, b):
        status, _, err = await mirror(home, "relay", "add", url)
        assert status == 0, err
    pairing = await start_mirror(a, "pair", "--json", *NO_LAN, "--timeout", "60")
    code = str(pairing.json["code"])
    status, out, err = await mirror(b, "join", code, "--no-discovery",
                                    "--name", b_name, "--timeout", "30")
    assert status == 0, err
    assert "joined through the relay" in out
    with trio.fail_after(30):
        assert await pairing.process.wait() == 0  # type: ignore[attr-defined]
    for home in (a, b):
        status, _, err = await mirror(home, "share", "journal", "--class", "devices")
        assert status == 0, err
    serving.append(await start_mirror(a, "serve", "--json", *NO_LAN))
    serving.append(await start_mirror(b, "serve", "--json", *NO_LAN))


async def test_pair_and_sync_through_a_relay_process(tmp_path: Path) -> None:
    relay = await trio.lowlevel.open_process(
        [sys.executable, "-m", "relay", "--host", "127.0.0.1", "--port", "0", "--json",
         "--log-level", "DEBUG"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env=mirror_env(tmp_path / "relay-home"),
    )
    assert relay.stdout is not None and relay.stderr is not None
    line = b""
    with trio.fail_after(20):
        while b"\n" not in line:
            chunk = await relay.stdout.receive_some(4096)
            assert chunk, "the relay exited early"
            line += chunk
    url = json.loads(line.split(b"\n", 1)[0])["url"]
    assert url.startswith("http://127.0.0.1:")
    a, b = tmp_path / "laptop", tmp_path / "phone"
    serving: list[MirrorProcess] = []
    try:
        await pair_and_serve_through_relay(a, b, url, f"phone {CANARY}", serving)
        # The name given with --name is this device's name, here and on the other side.
        status, out, _ = await mirror(b, "devices", "--json")
        me = next(d for d in json.loads(out) if d["this_device"])
        assert me["name"] == f"phone {CANARY}", "join --name through a relay was ignored"
        status, out, _ = await mirror(a, "devices", "--json")
        assert f"phone {CANARY}" in {d["name"] for d in json.loads(out)}
        status, _, err = await mirror(a, "reflect", f"through the relay {CANARY}")
        assert status == 0, err
        await wait_for(lambda: has(b, f"through the relay {CANARY}"), deadline_s=40)

        async def connected_through_relay() -> bool:
            status, out, _ = await mirror(b, "sync", "status", "--json")
            peers = json.loads(out)["peers"]
            return any(p["connected"] and str(p["address"]).startswith("relay:") for p in peers)

        await wait_for(connected_through_relay, deadline_s=20)
    finally:
        for proc in serving:
            assert await stop_mirror(proc) == 0
        relay.send_signal(signal.SIGTERM)
        with trio.fail_after(15):
            assert await relay.wait() == 0
    log = b""
    while chunk := await relay.stderr.receive_some(65536):
        log += chunk
    assert b"listening on" in log
    assert CANARY.encode() not in log, "the relay logged something it should not know"
