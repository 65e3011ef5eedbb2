"""The blind store as part of the Commons server: mounted under /store, and alone
with ``mirror-commons --store-only`` (real processes, 127.0.0.1 port 0), on both engines
(the ``database`` fixture: SQLite files in the home, or a real PostgreSQL database)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from tests.helpers import REPO, mirror_env
from tests.test_blind_e2e import ok, store_bytes
from tests.test_sync_e2e import listed, mirror


@asynccontextmanager
async def commons(home: Path, database: str | None, *extra: str) -> AsyncIterator[str]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "commons_server", "--home", str(home), "--port", "0", "--json",
         *(["--database", database] if database else []), *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=mirror_env(home), cwd=REPO,
    )
    assert process.stdout is not None
    line = b""
    with trio.fail_after(30):
        while b"\n" not in line:
            chunk = await process.stdout.receive_some(4096)
            assert chunk, "mirror-commons exited early"
            line += chunk
    try:
        yield str(json.loads(line.split(b"\n")[0])["url"])
    finally:
        process.terminate()
        with trio.fail_after(15):
            assert await process.wait() == 0


@pytest.mark.parametrize("store_only", [False, True])
async def test_a_device_syncs_through_the_commons_server(
    tmp_path: Path, store_only: bool, database: str | None, request: pytest.FixtureRequest
) -> None:
    a = tmp_path / "a"
    async with commons(tmp_path / "server", database,
                       *(["--store-only"] if store_only else [])) as url:
        base = url if store_only else f"{url}/store"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/healthz")).text == "ok"
            if not store_only:  # the Commons routes are still there
                assert (await client.get(f"{url}/healthz")).status_code == 200
        await ok(a, "share", "journal", "--class", "devices")
        await ok(a, "reflect", "--no-mirrorback", "kept by the commons server, unread")
        if not store_only:
            # The server's root is no blind store: refused now, with where the store is.
            status, out, err = await mirror(a, "store", "add", url)
            assert status == 1 and err.count("\n") == 1, err
            assert "is not a blind store" in err and f"mirror store add {url}/store" in err
            assert "no blind store configured" in await ok(a, "store", "list")
        await ok(a, "store", "add", base)
        out = json.loads(await ok(a, "store", "sync", "--compact", "--json"))
        assert out[0]["compacted"] and out[0]["rejected"] == 0
    assert await listed(a) == ["kept by the commons server, unread"]
    data = store_bytes(tmp_path / "server", database, request)
    assert data and b"unread" not in data


async def test_a_store_that_cannot_be_reached_is_not_added(tmp_path: Path) -> None:
    from tests.helpers_llm import unused_port

    a = tmp_path / "a"
    status, out, err = await mirror(a, "store", "add", f"http://127.0.0.1:{unused_port()}")
    assert status == 1 and err.count("\n") == 1, err
    assert "cannot reach the blind store" in err and "nothing was added" in err
    assert "no blind store configured" in await ok(a, "store", "list")
