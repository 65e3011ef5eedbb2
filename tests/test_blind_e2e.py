"""Blind store end to end with real processes: the store alone
(``python -m commons_server.blind`` on 127.0.0.1 port 0) and ``mirror`` per home.

A writes while B is off; A goes off; B comes on and gets A's writes from the
store. A new device C, once paired, restores everything from the store. After C
is removed the store refuses it. Throughout, the store's database and log hold
none of the canaries (document text, document ids, device names, the token).

Each test runs on both engines of the store (the ``database`` fixture): its SQLite
file in the home, and a real PostgreSQL database (``--database postgresql://...``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from protocol.keys import store_token
from tests.helpers import REPO, mirror_env, start_mirror, stop_mirror
from tests.sync_helpers import wait_for
from tests.test_sync_e2e import LOOPBACK, has, listed, mirror

TEXT_CANARY = "TEXTCANARY-4f2a"
NAME_CANARY = "NAMECANARY-9c1d"


@asynccontextmanager
async def store_process(
    home: Path, database: str | None = None
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """The blind store alone (on *database*, else its SQLite file in *home*); yields its
    URL and (after exit) its log output."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "commons_server.blind", "--home", str(home), "--port", "0",
         "--json", "--log-level", "DEBUG", *(["--database", database] if database else [])],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=mirror_env(home), cwd=REPO,
    )
    assert process.stdout is not None and process.stderr is not None
    logs: list[bytes] = []

    async def drain() -> None:
        assert process.stderr is not None
        async for chunk in process.stderr:
            logs.append(chunk)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        line = b""
        with trio.fail_after(30):
            while b"\n" not in line:
                chunk = await process.stdout.receive_some(4096)
                assert chunk, "the store exited early"
                line += chunk
        try:
            yield json.loads(line.split(b"\n")[0])["url"], logs
        finally:
            process.terminate()
            with trio.fail_after(15):
                assert await process.wait() == 0


def named_keyring(home: Path, name: str) -> None:
    """The joiner's own record carries its keyring's name (the host name) while the
    pairer records the --name; give both the same name so either may win the merge."""
    home.mkdir(parents=True, exist_ok=True)
    ring = {"version": 1, "device_seed": os.urandom(32).hex(), "device_name": name,
            "epochs": {"0": os.urandom(32).hex()}}
    fd = os.open(home / "keyring.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(ring, fh)


async def pair_named(a: Path, b: Path, name: str) -> None:
    named_keyring(b, name)
    pairing = await start_mirror(a, "pair", "--json", *LOOPBACK, "--timeout", "60")
    code, address = str(pairing.json["code"]), str(pairing.json["address"])
    status, _, err = await mirror(b, "join", code, "--address", address, "--no-discovery",
                                  "--name", name)
    assert status == 0, err
    with trio.fail_after(30):
        assert await pairing.process.wait() == 0  # type: ignore[attr-defined]


async def ok(home: Path, *args: str) -> str:
    status, out, err = await mirror(home, *args)
    assert status == 0, f"mirror {' '.join(args)}: {err}"
    return out


def pushed_journal(home: Path) -> bool:
    state = json.loads((home / "blind-stores.json").read_text())
    return any(
        any(doc.startswith("journal/") for doc in s["store_sv"]) for s in state["stores"].values()
    )


def store_bytes(home: Path, database: str | None, request: pytest.FixtureRequest) -> bytes:
    """Every byte the store keeps: its SQLite files, or every file of its PostgreSQL
    database after a CHECKPOINT (tests/store_targets.py)."""
    if database is None:
        return b"".join(p.read_bytes() for p in sorted(home.glob("blind-store.db*")))
    from tests.store_targets import StoreTarget

    # Else the canary checks below would pass over an empty database.
    assert not list(home.glob("*.db*")), "the store wrote SQLite files beside PostgreSQL"
    server = request.getfixturevalue("postgres_server")
    return StoreTarget("postgres", database, server).stored_bytes()


def flip_envelopes_after(home: Path, database: str | None, first: int) -> int:
    """Flip one bit in each envelope stored after *first*, underneath the store (its
    SQLite file, or its PostgreSQL tables); the number flipped."""
    if database is None:
        db = sqlite3.connect(home / "blind-store.db")
        with db:
            rows = db.execute("SELECT seq, data FROM envelopes WHERE seq>?", (first,)).fetchall()
            for seq, data in rows:
                db.execute("UPDATE envelopes SET data=? WHERE seq=?", (flipped(data), seq))
        db.close()
        return len(rows)
    import psycopg

    with psycopg.connect(database) as pg, pg.transaction():
        rows = pg.execute("SELECT seq, data FROM blind_store.envelopes WHERE seq>%s",
                          (first,)).fetchall()
        for seq, data in rows:
            pg.execute("UPDATE blind_store.envelopes SET data=%s WHERE seq=%s",
                       (flipped(data), seq))
    return len(rows)


def flipped(data: bytes) -> bytes:
    out = bytearray(data)
    out[100] ^= 0x80
    return bytes(out)


async def test_store_and_forward_restore_removal_and_no_plaintext(
    tmp_path: Path, database: str | None, request: pytest.FixtureRequest
) -> None:
    a, b, c, server = (tmp_path / n for n in ("laptop", "phone", "tablet", "server"))
    await pair_named(a, b, NAME_CANARY)
    async with store_process(server, database) as (url, logs):
        for home in (a, b):
            await ok(home, "share", "journal", "--class", "devices")
            await ok(home, "store", "add", url)

        # A writes while B is off; A pushes while it serves, then goes off.
        serve_a = await start_mirror(a, "serve", "--json", *LOOPBACK)
        try:
            await ok(a, "reflect", "--no-mirrorback", f"{TEXT_CANARY} written while B is off")
            await wait_for(lambda: pushed_journal(a), deadline_s=30)
        finally:
            assert await stop_mirror(serve_a) == 0

        # B comes on (A is off) and gets A's writes from the store.
        serve_b = await start_mirror(b, "serve", "--json", *LOOPBACK)
        try:
            await wait_for(lambda: has(b, f"{TEXT_CANARY} written while B is off"), deadline_s=30)
        finally:
            assert await stop_mirror(serve_b) == 0

        # A new device C, once paired, restores the whole devices state from the store.
        await ok(a, "reflect", "--no-mirrorback", "a second one, before the tablet joins")
        out = json.loads(await ok(a, "store", "sync", "--compact", "--json"))
        assert out[0]["compacted"] and out[0]["store_envelopes"] == 0
        await pair_named(a, c, "tablet")
        await ok(c, "store", "add", url)
        restored = json.loads(await ok(c, "store", "sync", "--json"))
        assert restored[0]["rejected"] == 0, restored
        assert set(await listed(c)) == set(await listed(a))
        status, out_c, _ = await mirror(c, "devices", "--json")
        assert NAME_CANARY in {d["name"] for d in json.loads(out_c)}

        # After C is removed, the store refuses it; B (which missed it) follows.
        tablet = next(d for d in json.loads(await ok(a, "devices", "--json"))
                      if d["name"] == "tablet")
        await ok(a, "devices", "remove", tablet["device_id"], "--yes")
        await ok(a, "reflect", "--no-mirrorback", "after the tablet was removed")
        await ok(a, "store", "sync")
        status, out_c, err_c = await mirror(c, "store", "sync")
        assert status == 1 and "refuses this device" in out_c + err_c
        assert not await has(c, "after the tablet was removed")
        await ok(b, "store", "sync")
        assert await has(b, "after the tablet was removed")
        rows = json.loads(await ok(b, "store", "list", "--json"))
        assert rows[0]["epoch"] == 1 and rows[0]["rejected"] == 0

        # T3: nothing readable in the store's files or its log.
        keyring = json.loads((a / "keyring.json").read_text())
        tokens = [store_token(bytes.fromhex(s), int(e)).hex().encode()
                  for e, s in keyring["epochs"].items()]
        data = store_bytes(server, database, request)
    log_text = b"".join(logs)
    assert b"appended" in log_text  # the log was captured (at DEBUG)
    for canary in (TEXT_CANARY.encode(), NAME_CANARY.encode(), b"tablet", b"journal/",
                   b"before the tablet", *tokens):
        assert canary not in data, canary
        assert canary not in log_text, canary


async def test_a_tampered_envelope_in_the_store_is_rejected(
    tmp_path: Path, database: str | None
) -> None:
    a, b, server = tmp_path / "a", tmp_path / "b", tmp_path / "server"
    await pair_named(a, b, "phone")
    async with store_process(server, database) as (url, _):
        for home in (a, b):
            await ok(home, "share", "journal", "--class", "devices")
            await ok(home, "store", "add", url)
        await ok(a, "reflect", "--no-mirrorback", "intact")
        first = json.loads(await ok(a, "store", "sync", "--json"))[0]["cursor"]
        await ok(a, "reflect", "--no-mirrorback", "tampered with")
        await ok(a, "store", "sync")
        # Flip one bit in each envelope of the second write.
        tampered = flip_envelopes_after(server, database, first)
        assert tampered
        report = json.loads(await ok(b, "store", "sync", "--json"))
        assert report[0]["rejected"] == tampered
        assert await listed(b) == ["intact"]
