"""End to end with real processes: pair by code, serve, a reflection on A appears on B."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from tests.helpers import REPO, mirror_env, start_mirror, stop_mirror
from tests.sync_helpers import wait_for

LOOPBACK = ["--listen", "127.0.0.1:0", "--no-discovery"]


async def mirror(home: Path, *args: str) -> tuple[int, str, str]:
    import sys

    result = await trio.run_process(
        [sys.executable, "-m", "node.cli", *args],
        env=mirror_env(home),
        cwd=REPO,
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def listed(home: Path) -> list[str]:
    status, out, err = await mirror(home, "list", "--json")
    assert status == 0, err
    return [r["text"] for r in json.loads(out)]


async def has(home: Path, text: str) -> bool:
    return text in await listed(home)


async def pair(a: Path, b: Path) -> None:
    pairing = await start_mirror(a, "pair", "--json", *LOOPBACK, "--timeout", "60")
    code, address = str(pairing.json["code"]), str(pairing.json["address"])
    status, out, err = await mirror(b, "join", code, "--address", address, "--no-discovery",
                                    "--name", "phone")
    assert status == 0, err
    assert "joined" in out
    with trio.fail_after(30):
        assert await pairing.process.wait() == 0  # type: ignore[attr-defined]


async def test_pair_serve_and_sync_between_processes(tmp_path: Path) -> None:
    a, b = tmp_path / "laptop", tmp_path / "phone"
    await pair(a, b)
    for home in (a, b):
        status, _, err = await mirror(home, "share", "journal", "--class", "devices")
        assert status == 0, err
    status, out, _ = await mirror(a, "devices", "--json")
    assert {d["name"] for d in json.loads(out)} >= {"phone"}
    status, out, _ = await mirror(b, "devices", "--json")
    me = next(d for d in json.loads(out) if d["this_device"])
    assert me["name"] == "phone", "the joiner keeps the name it gave with --name"
    serve_a = await start_mirror(a, "serve", "--json", *LOOPBACK)
    address_a = str(serve_a.json["address"])
    serve_b = await start_mirror(b, "serve", "--json", *LOOPBACK, "--peer", address_a)
    try:
        status, _, err = await mirror(a, "reflect", "hello from the laptop")
        assert status == 0, err
        status, _, err = await mirror(a, "reflect", "--private", "PRIVATE-CANARY on the laptop")
        assert status == 0, err
        await wait_for(lambda: has(b, "hello from the laptop"), deadline_s=30)
        status, _, _ = await mirror(b, "reflect", "and back from the phone")
        await wait_for(lambda: has(a, "and back from the phone"), deadline_s=30)
        assert "PRIVATE-CANARY on the laptop" not in await listed(b)
        status, out, _ = await mirror(b, "sync", "status", "--json")
        state = json.loads(out)
        assert state["serving"] and state["peers"]
    finally:
        assert await stop_mirror(serve_b) == 0
        assert await stop_mirror(serve_a) == 0
    db = (b / "mirror.db").read_bytes() + (b / "mirror.db-wal").read_bytes() if (
        b / "mirror.db-wal"
    ).exists() else (b / "mirror.db").read_bytes()
    assert b"PRIVATE-CANARY" not in db


async def test_wrong_code_fails_cleanly_on_both_sides(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    pairing = await start_mirror(a, "pair", "--json", *LOOPBACK, "--timeout", "60")
    code, address = str(pairing.json["code"]), str(pairing.json["address"])
    wrong = ("2" if code[0] != "2" else "3") + code[1:]
    for _ in range(3):
        status, _, err = await mirror(b, "join", wrong, "--address", address, "--no-discovery")
        assert status == 1 and "did not match" in err, err
    with trio.fail_after(30):
        assert await pairing.process.wait() == 1  # type: ignore[attr-defined]
    status, out, _ = await mirror(a, "devices", "--json")
    assert len(json.loads(out)) == 1, "nothing was added on the pairing side"
    status, out, _ = await mirror(b, "devices", "--json")
    assert len(json.loads(out)) == 1, "nothing was added on the joining side"


DISCOVER = ["--listen", "127.0.0.1:0", "--discovery-interface", "127.0.0.1"]


async def test_pair_and_sync_through_discovery_on_loopback(tmp_path: Path) -> None:
    """No addresses given: the devices find each other by their rotating tag."""
    a, b = tmp_path / "desk", tmp_path / "tablet"
    pairing = await start_mirror(a, "pair", "--json", *DISCOVER, "--timeout", "60")
    code = str(pairing.json["code"])
    status, out, err = await mirror(b, "join", code, "--discovery-interface", "127.0.0.1",
                                    "--timeout", "30")
    assert status == 0, err
    with trio.fail_after(30):
        assert await pairing.process.wait() == 0  # type: ignore[attr-defined]
    for home in (a, b):
        status, _, err = await mirror(home, "share", "journal", "--class", "devices")
        assert status == 0, err
    serve_a = await start_mirror(a, "serve", "--json", *DISCOVER)
    serve_b = await start_mirror(b, "serve", "--json", *DISCOVER)
    try:
        status, _, err = await mirror(a, "reflect", "found you without an address")
        assert status == 0, err
        await wait_for(lambda: has(b, "found you without an address"), deadline_s=30)
    finally:
        assert await stop_mirror(serve_b) == 0
        assert await stop_mirror(serve_a) == 0


async def test_devices_remove_starts_a_new_epoch(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    await pair(a, b)
    status, out, _ = await mirror(a, "devices", "--json")
    phone = next(d for d in json.loads(out) if d["name"] == "phone")
    status, _, err = await mirror(a, "devices", "remove", phone["device_id"][:6])
    assert status == 2 and "--yes" in err  # no terminal to ask on
    status, out, err = await mirror(a, "devices", "remove", phone["device_id"][:6], "--yes")
    assert status == 0, err
    assert "epoch 1" in out
    status, out, _ = await mirror(a, "devices", "--json")
    removed = next(d for d in json.loads(out) if d["name"] == "phone")
    assert removed["active"] is False
    keyring = json.loads((a / "keyring.json").read_text())
    assert sorted(keyring["epochs"]) == ["0", "1"]
    status, _, err = await mirror(a, "devices", "remove", "nosuchdevice", "--yes")
    assert status == 1 and "no device" in err
