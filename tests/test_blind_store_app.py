"""The blind store's HTTP interface: tokens, limits, quotas, conflicts, hostile input (T5, T8).

Most tests call the ASGI application directly (a fake ``receive``/``send``);
one runs it under hypercorn on 127.0.0.1 port 0 through httpx. Each runs on both
engines: the SQLite file and a real PostgreSQL database (``postgres_dsn``;
skipped with the reason where none can be started). The hostile-input property
runs on SQLite only (it makes a store per example); the SQL is the same.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commons_server.blind import BlindStoreApp, StoreLimits, build_blind_store_app
from commons_server.blind.server import serve_blind_store
from protocol.keys import store_group_id, store_token
from protocol.store import (
    KIND_SNAPSHOT,
    KIND_UPDATE,
    decode_pull,
    encode_upload,
    seal_envelope,
)
from tests.sync_helpers import wait_for

SECRET = bytes(range(32))
SEED = bytes([7]) * 32
TOKEN = store_token(SECRET, 0)
AUTH = (b"authorization", b"Bearer " + TOKEN.hex().encode())
STATUSES = {200, 201, 400, 401, 404, 405, 409, 410, 413, 429, 507}


def envelope(kind: int = KIND_UPDATE, payload: bytes = b"u", epoch: int = 0) -> bytes:
    return seal_envelope(
        kind=kind, doc_id="journal/2026-11", payload=payload, state_vector=b"\x00",
        group_secret=SECRET, epoch=epoch, group_id=store_group_id(store_token(SECRET, epoch)),
        device_seed=SEED, nonce=os.urandom(24),
    )


class Answer:
    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body


async def call(
    app: BlindStoreApp, method: str, path: str, *, body: bytes = b"", query: bytes = b"",
    headers: tuple[tuple[bytes, bytes], ...] = (AUTH,), root_path: str = "",
    chunk: int | None = None,
) -> Answer:
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] if chunk else [body]
    pieces = pieces or [b""]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pieces:
            piece = pieces.pop(0)
            return {"type": "http.request", "body": piece, "more_body": bool(pieces)}
        await trio.sleep_forever()
        raise AssertionError

    async def send(message: Any) -> None:
        sent.append(dict(message))

    scope = {"type": "http", "method": method, "path": root_path + path, "root_path": root_path,
             "query_string": query, "headers": list(headers), "client": ("127.0.0.1", 5)}
    await app(scope, receive, send)
    start = sent[0]
    assert start["type"] == "http.response.start"
    return Answer(start["status"], dict(start["headers"]), b"".join(
        m.get("body", b"") for m in sent[1:]))


@pytest.fixture
def app(tmp_path: Path, database: str | None) -> Iterator[BlindStoreApp]:
    store = build_blind_store_app(tmp_path / "store", database=database)
    yield store
    store.close()


def small_app(tmp_path: Path, database: str | None, **limits: Any) -> BlindStoreApp:
    return build_blind_store_app(tmp_path / "small", StoreLimits(**limits), database=database)


async def usage(app: BlindStoreApp) -> dict[str, int]:
    import json

    return dict(json.loads((await call(app, "GET", "/v1/usage")).body))


async def test_health_needs_no_token_everything_else_does(app: BlindStoreApp) -> None:
    assert (await call(app, "GET", "/healthz", headers=())).body == b"ok"
    for method, path in (("GET", "/v1/log"), ("POST", "/v1/log"), ("PUT", "/v1/snapshot"),
                         ("DELETE", "/v1/log"), ("GET", "/v1/usage")):
        for headers in ((), ((b"authorization", b"Bearer " + b"A" * 64),),
                        ((b"authorization", b"Basic x"),), (AUTH, AUTH)):
            answer = await call(app, method, path, headers=headers, query=b"")
            assert answer.status == 401, (method, path, headers)
            assert b"www-authenticate" in answer.headers


async def test_append_pull_and_cursor(app: BlindStoreApp) -> None:
    first, second = envelope(), envelope(payload=b"v" * 600)
    answer = await call(app, "POST", "/v1/log", body=encode_upload([first, second]))
    assert answer.status == 201 and b'"last_seq": 2' in answer.body
    pulled = await call(app, "GET", "/v1/log", query=b"after=0")
    assert decode_pull(pulled.body) == [(1, first), (2, second)]
    assert pulled.headers[b"mirror-cursor"] == b"2" and pulled.headers[b"mirror-more"] == b"0"
    assert decode_pull((await call(app, "GET", "/v1/log", query=b"after=1")).body) == [
        (2, second)]
    assert (await call(app, "GET", "/v1/log", query=b"after=3")).status == 409
    # another token is another log
    other = (b"authorization", b"Bearer " + store_token(SECRET, 1).hex().encode())
    assert (await call(app, "GET", "/v1/log", headers=(other,))).body == b""


async def test_malformed_uploads_are_refused_and_store_nothing(app: BlindStoreApp) -> None:
    good = envelope()
    bad_bodies = [
        b"\x00\x00\x00",  # truncated length
        b"\x00\x00\x01\x00" + good[:100],  # runs past the end
        encode_upload([good[:-1]]),  # not a bucket size
        encode_upload([bytes([2]) + good[1:]]),  # unknown version
        encode_upload([good[:1] + bytes([9]) + good[2:]]),  # unknown kind
        encode_upload([good[:2] + bytes([0]) + good[3:]]),  # zero name blocks
        encode_upload([envelope(KIND_SNAPSHOT)]),  # snapshot parts are not log entries
        b"",  # nothing
    ]
    for body in bad_bodies:
        answer = await call(app, "POST", "/v1/log", body=body)
        assert answer.status == 400, body[:16]
        assert answer.headers[b"content-type"] == b"application/json"
    assert (await usage(app))["last_seq"] == 0
    for query in (b"after=-1", b"after=x", b"after=1&after=2", b"before=1", b"after=" + b"9" * 40,
                  b"%ff=1", b"wait=1.5"):
        assert (await call(app, "GET", "/v1/log", query=query)).status == 400, query
    assert (await call(app, "POST", "/v1/log", query=b"x=1",
                       body=encode_upload([good]))).status == 400
    assert (await call(app, "PATCH", "/v1/log")).status == 405
    assert (await call(app, "GET", "/v1/nothing")).status == 404


async def test_body_limit_is_checked_before_buffering(
    tmp_path: Path, database: str | None
) -> None:
    app = small_app(tmp_path, database, max_request_bytes=1000)
    try:
        big = encode_upload([envelope(payload=b"x" * 600)])  # 1024 + 4 bytes
        declared = ((b"content-length", str(len(big)).encode()), AUTH)
        assert (await call(app, "POST", "/v1/log", body=big, headers=declared)).status == 413
        # without a declared length it is cut while streaming
        assert (await call(app, "POST", "/v1/log", body=big, chunk=100)).status == 413
        bad = ((b"content-length", b"12x"), AUTH)
        assert (await call(app, "POST", "/v1/log", body=b"", headers=bad)).status == 400
        assert (await usage(app))["last_seq"] == 0
    finally:
        app.close()


async def test_quota_per_group_and_compaction_frees_it(
    tmp_path: Path, database: str | None
) -> None:
    app = small_app(tmp_path, database, max_group_envelopes=3)
    try:
        for _ in range(3):
            assert (await call(app, "POST", "/v1/log",
                               body=encode_upload([envelope()]))).status == 201
        full = await call(app, "POST", "/v1/log", body=encode_upload([envelope()]))
        assert full.status == 507 and b"snapshot" in full.body
        snap = await call(app, "PUT", "/v1/snapshot", query=b"covers=3",
                          body=encode_upload([envelope(KIND_SNAPSHOT)]))
        assert snap.status == 200 and b'"dropped": 3' in snap.body
        assert (await call(app, "POST", "/v1/log",
                           body=encode_upload([envelope()]))).status == 201
        assert (await usage(app))["envelopes"] == 1
    finally:
        app.close()


async def test_byte_quota(tmp_path: Path, database: str | None) -> None:
    app = small_app(tmp_path, database, max_group_bytes=600)
    try:
        assert (await call(app, "POST", "/v1/log", body=encode_upload([envelope()]))).status == 201
        assert (await call(app, "POST", "/v1/log",
                           body=encode_upload([envelope(), envelope()]))).status == 507
        assert (await usage(app))["envelopes"] == 1
    finally:
        app.close()


async def test_snapshot_rules(app: BlindStoreApp) -> None:
    await call(app, "POST", "/v1/log", body=encode_upload([envelope(), envelope()]))
    part = encode_upload([envelope(KIND_SNAPSHOT)])
    assert (await call(app, "PUT", "/v1/snapshot", body=part)).status == 400  # no covers
    assert (await call(app, "PUT", "/v1/snapshot", query=b"covers=3", body=part)).status == 409
    assert (await call(app, "PUT", "/v1/snapshot", query=b"covers=2",
                       body=encode_upload([envelope()]))).status == 400  # not snapshot parts
    assert (await call(app, "PUT", "/v1/snapshot", query=b"covers=2", body=part)).status == 200
    assert (await call(app, "PUT", "/v1/snapshot", query=b"covers=1", body=part)).status == 409
    pulled = await call(app, "GET", "/v1/log", query=b"after=0")
    assert [seq for seq, _ in decode_pull(pulled.body)] == [2]
    assert pulled.headers[b"mirror-cursor"] == b"2"
    assert (await call(app, "GET", "/v1/log", query=b"after=2")).body == b""


async def test_retired_log_refuses_its_token_and_keeps_only_the_notice(
    app: BlindStoreApp,
) -> None:
    await call(app, "POST", "/v1/log", body=encode_upload([envelope()]))
    notice = envelope(KIND_SNAPSHOT)
    assert (await call(app, "DELETE", "/v1/log", body=encode_upload([notice]))).status == 200
    for method, path in (("POST", "/v1/log"), ("PUT", "/v1/snapshot"), ("GET", "/v1/usage"),
                         ("DELETE", "/v1/log")):
        query = b"covers=0" if path == "/v1/snapshot" else b""
        body = encode_upload([envelope() if method == "POST" else notice])
        assert (await call(app, method, path, query=query, body=body)).status == 410
    pulled = await call(app, "GET", "/v1/log")
    assert pulled.status == 410 and decode_pull(pulled.body) == [(0, notice)]
    assert app.storage._db.execute("SELECT COUNT(*) FROM envelopes").fetchone()[0] == 0


async def test_rate_limit_per_address(tmp_path: Path, database: str | None) -> None:
    now = [0.0]
    store = small_app(tmp_path, database, request_burst=3, requests_per_s=1.0)
    store._clock = lambda: now[0]
    try:
        statuses = [(await call(store, "GET", "/v1/usage")).status for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        now[0] += 1.0
        assert (await call(store, "GET", "/v1/usage")).status == 200
        assert store.statistics().refused[429] == 1
    finally:
        store.close()


async def test_a_waiting_pull_returns_when_news_arrives(app: BlindStoreApp) -> None:
    answers: list[Answer] = []
    async with trio.open_nursery() as nursery:
        async def pull() -> None:
            answers.append(await call(app, "GET", "/v1/log", query=b"after=0&wait=30"))

        nursery.start_soon(pull)
        await wait_for(lambda: app.statistics().waiting_pulls == 1)
        await call(app, "POST", "/v1/log", body=encode_upload([envelope()]))
    assert len(decode_pull(answers[0].body)) == 1


async def test_mounted_under_a_prefix(app: BlindStoreApp) -> None:
    assert (await call(app, "GET", "/healthz", root_path="/store")).status == 200
    assert (await call(app, "GET", "/v1/usage", root_path="/store")).status == 200


async def test_served_by_hypercorn_over_loopback(app: BlindStoreApp) -> None:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_blind_store, app, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=url) as client:
            headers = {"authorization": f"Bearer {TOKEN.hex()}"}
            r = await client.post("/v1/log", content=encode_upload([envelope()]), headers=headers)
            assert r.status_code == 201
            r = await client.get("/v1/log", params={"after": 0}, headers=headers)
            assert len(decode_pull(r.content)) == 1
            r = await client.post("/v1/log", content=b"\xff" * 10, headers=headers)
            assert r.status_code == 400 and "error" in r.json()
        nursery.cancel_scope.cancel()


METHODS = st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", ""])
PATHS = st.one_of(st.sampled_from(["/v1/log", "/v1/snapshot", "/v1/usage", "/healthz", "/"]),
                  st.text(max_size=40).map(lambda t: "/" + t))


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=METHODS, path=PATHS, query=st.binary(max_size=40), body=st.binary(max_size=600),
       with_auth=st.booleans(), mutate=st.one_of(st.none(), st.integers(0, 2000)))
def test_hostile_requests_get_an_http_error_and_change_nothing(
    tmp_path: Path, method: str, path: str, query: bytes, body: bytes, with_auth: bool,
    mutate: int | None,
) -> None:
    async def main() -> None:
        store = build_blind_store_app(tmp_path / "fuzz")
        try:
            await call(store, "POST", "/v1/log", body=encode_upload([envelope()]))
            before = (await usage(store))
            data = body
            if mutate is not None:  # a valid upload with one byte flipped
                valid = bytearray(encode_upload([envelope()]))
                valid[mutate % len(valid)] ^= 0xFF
                data = bytes(valid)
            headers = (AUTH,) if with_auth else ()
            answer = await call(store, method, path, body=data, query=query, headers=headers)
            assert answer.status in STATUSES
            if answer.status >= 400:
                assert await usage(store) == before
        finally:
            store.close()

    trio.run(main)
