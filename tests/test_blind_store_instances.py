"""Several blind-store instances over one PostgreSQL database (issue 19, part 2).

Each instance is a whole BlindStoreApp with its own connection, as separate
processes would have: appends to one log from both stay one gapless sequence, a
quota holds across them, a pull waiting on one returns when another appends, a
database of a newer schema is refused untouched, and a PostgreSQL restart costs
a 503 (retry), never an acknowledged upload. Skipped with the reason where no
PostgreSQL can be started.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from commons_server.blind import BlindStoreApp, StoreLimits
from commons_server.blind.app import BlindStoreApp as App
from commons_server.blind.storage import BlindStorage, StoreFileError
from protocol.keys import store_group_id, store_token
from protocol.store import KIND_UPDATE, decode_pull, encode_upload, seal_envelope
from tests.postgres_helper import PostgresServer
from tests.sync_helpers import wait_for

pytestmark = pytest.mark.postgres

SEED = bytes([7]) * 32
UNLIMITED_RATE = {"requests_per_s": 1e9, "request_burst": 10**9}


def new_secret() -> bytes:
    return os.urandom(32)


def envelope(secret: bytes, payload: bytes = b"u") -> bytes:
    return seal_envelope(
        kind=KIND_UPDATE, doc_id="journal/2026-11", payload=payload, state_vector=b"\x00",
        group_secret=secret, epoch=0, group_id=store_group_id(store_token(secret, 0)),
        device_seed=SEED, nonce=os.urandom(24),
    )


async def call(app: BlindStoreApp, method: str, path: str, secret: bytes, *,
               body: bytes = b"", query: bytes = b"",
               address: str = "192.0.2.1") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    pending = [body]

    async def receive() -> dict[str, Any]:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: Any) -> None:
        sent.append(dict(message))

    token = store_token(secret, 0).hex().encode()
    scope = {"type": "http", "method": method, "path": path, "root_path": "",
             "query_string": query, "headers": [(b"authorization", b"Bearer " + token)],
             "client": (address, 5)}
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@asynccontextmanager
async def instances(dsn: str, tmp_path: Path, n: int = 2,
                    **limits: Any) -> AsyncIterator[list[BlindStoreApp]]:
    """*n* instances of one store, each following the others' news."""
    store_limits = StoreLimits(**{**UNLIMITED_RATE, **limits})
    apps = [App(BlindStorage.open(tmp_path / f"i{i}", store_limits, database=dsn),
                store_limits) for i in range(n)]
    try:
        async with trio.open_nursery() as nursery:
            for app in apps:
                await nursery.start(app.follow_other_instances)
            yield apps
            nursery.cancel_scope.cancel()
    finally:
        for app in apps:
            app.close()


async def test_appends_through_two_instances_make_one_gapless_log(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    secret = new_secret()
    async with instances(postgres_dsn, tmp_path) as (a, b):
        acknowledged: list[tuple[int, int]] = []

        async def upload(app: BlindStoreApp, i: int) -> None:
            status, body = await call(app, "POST", "/v1/log", secret,
                                      body=encode_upload([envelope(secret, b"%d" % i)] * 2))
            assert status == 201, body
            answer = json.loads(body)
            acknowledged.append((answer["first_seq"], answer["last_seq"]))

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(upload, a if i % 2 else b, i)
        seqs = sorted(s for first, last in acknowledged for s in range(first, last + 1))
        assert seqs == list(range(1, 41))
        status, body = await call(b, "GET", "/v1/log", secret, query=b"after=0")
        assert status == 200 and [seq for seq, _ in decode_pull(body)] == seqs


async def test_a_quota_per_address_holds_across_instances(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    async with instances(postgres_dsn, tmp_path, max_address_logs=3) as (a, b):
        statuses: list[int] = []

        async def new_log(app: BlindStoreApp) -> None:
            secret = new_secret()
            status, _ = await call(app, "POST", "/v1/log", secret,
                                   body=encode_upload([envelope(secret)]))
            statuses.append(status)

        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(new_log, a if i % 2 else b)
        assert sorted(statuses) == [201] * 3 + [507] * 7
        figures = await a.storage.figures()
        assert (figures.logs, figures.owners_at_quota) == (3, 1)


async def test_a_pull_waiting_on_one_instance_returns_when_another_appends(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    secret = new_secret()
    async with instances(postgres_dsn, tmp_path) as (a, b):
        answers: list[tuple[int, bytes]] = []

        async def pull() -> None:
            answers.append(await call(b, "GET", "/v1/log", secret, query=b"after=0&wait=20"))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(pull)
            await wait_for(lambda: b.statistics().waiting_pulls == 1)
            status, _ = await call(a, "POST", "/v1/log", secret,
                                   body=encode_upload([envelope(secret)]))
            assert status == 201
            with trio.fail_after(10):  # well before the pull's own 20 s
                await wait_for(lambda: bool(answers))
        assert answers[0][0] == 200 and len(decode_pull(answers[0][1])) == 1


async def test_a_database_of_a_newer_version_is_refused_untouched(
    postgres_dsn: str, postgres_server: PostgresServer, tmp_path: Path,
) -> None:
    limits = StoreLimits()
    BlindStorage.open(tmp_path, limits, database=postgres_dsn).close()
    dbname = postgres_dsn.rsplit("/", 1)[1]
    postgres_server.sql(dbname, "UPDATE blind_store.meta SET value='3' WHERE key='version'")
    with pytest.raises(StoreFileError, match="version 3, newer"):
        BlindStorage.open(tmp_path, limits, database=postgres_dsn)
    assert postgres_server.sql(
        dbname, "SELECT value FROM blind_store.meta WHERE key='version'") == [("3",)]


async def test_a_postgresql_restart_costs_a_retry_never_an_acknowledged_upload(
    postgres_dsn: str, postgres_server: PostgresServer, tmp_path: Path,
) -> None:
    secret = new_secret()
    async with instances(postgres_dsn, tmp_path, n=1) as (app,):
        status, _ = await call(app, "POST", "/v1/log", secret,
                               body=encode_upload([envelope(secret, b"before")]))
        assert status == 201
        await trio.to_thread.run_sync(postgres_server.restart)  # a crash of the server
        status, body = await call(app, "POST", "/v1/log", secret,
                                  body=encode_upload([envelope(secret, b"during")]))
        assert status == 503, body  # its connection died with the server: retry
        status, _ = await call(app, "POST", "/v1/log", secret,
                               body=encode_upload([envelope(secret, b"after")]))
        assert status == 201
        status, body = await call(app, "GET", "/v1/log", secret, query=b"after=0")
        assert [seq for seq, _ in decode_pull(body)] == [1, 2]


async def test_two_store_only_processes_serve_one_store(
    postgres_dsn: str, tmp_path: Path,
) -> None:
    """``mirror-commons --store-only --database ...`` twice: what one process takes, a
    pull waiting on the other returns (real processes, real HTTP on loopback)."""
    import httpx

    from tests.commons_processes import start_commons

    secret = new_secret()
    token = {"authorization": f"Bearer {store_token(secret, 0).hex()}"}
    started = []
    try:
        for name in ("s1", "s2"):
            started.append(await start_commons(name, tmp_path / name, postgres_dsn,
                                               "--store-only"))
        first, second = started
        async with httpx.AsyncClient(timeout=30) as http, trio.open_nursery() as nursery:
            answers: list[httpx.Response] = []

            async def pull() -> None:
                answers.append(await http.get(second.url + "/v1/log",
                                              params={"after": 0, "wait": 20}, headers=token))

            async def parked() -> bool:
                metrics = (await http.get(second.url + "/metrics")).text
                return "\nblindstore_waiting_pulls 1\n" in metrics

            nursery.start_soon(pull)
            await wait_for(parked, 15)  # held open on the second process
            posted = await http.post(first.url + "/v1/log", headers=token,
                                     content=encode_upload([envelope(secret, b"one")]))
            assert posted.status_code == 201, posted.text
            with trio.fail_after(15):
                await wait_for(lambda: bool(answers), 15)
        assert answers[0].status_code == 200
        assert [seq for seq, _ in decode_pull(answers[0].content)] == [1]
    finally:
        for process in started:
            await process.kill()
