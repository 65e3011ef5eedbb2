"""The blind store as a plain ASGI application (mountable under any prefix).

Theory of operation
-------------------
Every request but ``/healthz`` carries ``Authorization: Bearer <64 hex>``: the
token a device derives from its group secret at one epoch. The store hashes it
into the group id (``protocol.keys.store_group_id``) and files everything under
that id; it never stores the token and never holds a key. Whoever presents the
token may read and write that log — that is every device of the epoch, and
nobody else.

Routes (relative to the mount point)::

    GET    /healthz                          "ok"
    POST   /v1/log                           append envelopes (upload records)
    GET    /v1/log?after=N[&wait=S]          records after N (a snapshot first if
                                             N is below what it covers); with
                                             ``wait`` an empty answer is held up to
                                             S seconds for news
    PUT    /v1/snapshot?covers=N             replace the snapshot; drop envelopes <= N
    DELETE /v1/log                           retire the log (body: an optional
                                             forwarding notice, upload records)
    GET    /v1/usage                         JSON: last_seq, covers, envelopes, bytes
    GET    /metrics                          Prometheus text: usage against the quotas,
                                             bytes held for requests (no token)

Answers to a pull carry ``mirror-cursor`` (pull after this next),
``mirror-head`` (the log's last sequence number), ``mirror-covers`` and
``mirror-more``. Errors are JSON ``{"error": "..."}`` with a status that says
what to do: 400 malformed, 401 no or bad token, 404/405 no such route, 409
conflict (snapshot behind the current one, cursor ahead of the log), 410 log
retired (a pull gets the forwarding notice as its body), 413 body too large,
429 too many requests, 503 busy (retry), 507 quota exceeded (compact first, or
the store's or this address's quota: see ``limits.py``).

Memory: every body read and every pull answer built is first reserved from one
:class:`~.budget.ByteBudget` (twice its size: the body and its envelopes, the
records and the answer), so the bytes held for requests stay under
``max_buffered_bytes`` however many arrive at once.

The store checks envelope *shapes* (version, kind, bucket sizes), never their
content: it cannot. Signatures and decryption are the devices' business.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import trio

from protocol import RemoteProtocolError
from protocol.keys import store_group_id
from protocol.store import KIND_SNAPSHOT, decode_upload, encode_pull, envelope_shape

from .budget import BudgetTimeout, ByteBudget
from .limits import BODY_TIMEOUT_S, MAX_TRACKED_ADDRESSES, MIN_BODY_BYTES_PER_S, StoreLimits
from .owners import address_key
from .storage import BlindStorage, LogRetired, StoreRefusal

log = logging.getLogger("mirror.blindstore")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BEARER = re.compile(rb"Bearer ([0-9a-f]{64})")
NUMBER = re.compile(r"[0-9]{1,18}")
MAX_QUERY_BYTES = 256


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


@dataclass
class BlindStoreStatistics:
    requests: int = 0
    appended_envelopes: int = 0
    appended_bytes: int = 0
    snapshots: int = 0
    waiting_pulls: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    """Requests answered with an error, by status."""
    buffered_bytes: int = 0
    """Bytes reserved now for requests in flight (bodies, answers)."""
    peak_buffered_bytes: int = 0
    """The most ever reserved at once: never above ``max_buffered_bytes``."""
    buffer_waiting: int = 0
    """Requests waiting for their share of ``max_buffered_bytes`` now."""


class BlindStoreApp:
    """ASGI application of the blind store; one per process (it owns the database)."""

    def __init__(self, storage: BlindStorage, limits: StoreLimits,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.limits = limits
        self._news: dict[bytes, trio.Event] = {}
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._clock = clock
        self._stats = BlindStoreStatistics()
        self.budget = ByteBudget(limits.max_buffered_bytes)

    def statistics(self) -> BlindStoreStatistics:
        s = self._stats
        held = self.budget.statistics()
        return BlindStoreStatistics(
            requests=s.requests, appended_envelopes=s.appended_envelopes,
            appended_bytes=s.appended_bytes, snapshots=s.snapshots,
            waiting_pulls=s.waiting_pulls, refused=dict(s.refused),
            buffered_bytes=held.reserved, peak_buffered_bytes=held.peak,
            buffer_waiting=held.waiting,
        )

    def close(self) -> None:
        self.storage.close()

    async def follow_other_instances(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Wake this instance's waiting pulls when another instance of the same
        PostgreSQL database changes their log (``pg_listen.py``); returns at once
        for a SQLite store (one process). Start it with ``nursery.start``."""
        url = self.storage.database_url
        if url is None:
            task_status.started()
            return
        from ..pg_listen import RESYNC, PgListener
        from .postgres import NEWS_CHANNEL

        def deliver(channel: str, payload: str) -> None:
            if (channel, payload) == RESYNC:  # news may have been missed: all look again
                for group_id in list(self._news):
                    self._wake(group_id)
                return
            try:
                self._wake(bytes.fromhex(payload))
            except ValueError:
                log.warning("ignoring a notification that is not a log id")

        await PgListener(url, [NEWS_CHANNEL]).run(deliver, task_status=task_status)

    # ------------------------------------------------------------------ ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await _lifespan(receive, send)
            return
        if kind != "http":
            if kind == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        self._stats.requests += 1
        try:
            await self._route(scope, receive, send)
        except HTTPError as exc:
            self._stats.refused[exc.status] = self._stats.refused.get(exc.status, 0) + 1
            log.info("%s %s -> %d %s", scope.get("method"), _route_path(scope), exc.status,
                     exc.message)
            await _respond(send, exc.status, _error_body(exc.message),
                           [(b"content-type", b"application/json"), *exc.headers])

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _route_path(scope)
        method = str(scope.get("method", ""))
        if path == "/healthz":
            _allow(method, ("GET",))
            await _respond(send, 200, b"ok", [(b"content-type", b"text/plain")])
            return
        if path == "/metrics":
            _allow(method, ("GET",))
            self._rate_limit(scope)
            await _respond(send, 200, (await self.metrics_text()).encode(),
                           [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])
            return
        routes: dict[str, tuple[str, ...]] = {
            "/v1/log": ("GET", "POST", "DELETE"), "/v1/snapshot": ("PUT",), "/v1/usage": ("GET",)
        }
        if path not in routes:
            raise HTTPError(404, "no such route")
        _allow(method, routes[path])
        self._rate_limit(scope)
        query = _query(scope, {"/v1/log": {"after", "wait"}, "/v1/snapshot": {"covers"}}.get(
            path, set()) if method in ("GET", "PUT") else set())
        group_id = store_group_id(_token(scope))
        try:
            if path == "/v1/usage":
                usage = await self.storage.usage(group_id)
                await _respond_json(send, 200, {
                    "last_seq": usage.last_seq, "covers": usage.covers,
                    "envelopes": usage.envelopes, "bytes": usage.bytes,
                    "quota_bytes": self.limits.max_group_bytes,
                    "quota_envelopes": self.limits.max_group_envelopes,
                })
            elif method == "GET":
                await self._pull(send, group_id, query)
            elif method == "POST":
                await self._append(scope, receive, send, group_id)
            elif method == "PUT":
                await self._snapshot(scope, receive, send, group_id, query)
            else:
                await self._retire(scope, receive, send, group_id)
        except LogRetired as exc:
            self._count(410)
            if method == "GET" and path == "/v1/log":
                await _respond(send, 410, exc.forward, [
                    (b"content-type", b"application/octet-stream"), (b"mirror-retired", b"1")])
            else:
                await _respond(send, 410, _error_body(str(exc)),
                               [(b"content-type", b"application/json")])
        except StoreRefusal as exc:
            raise HTTPError(exc.status, str(exc)) from None

    def _count(self, status: int) -> None:
        self._stats.refused[status] = self._stats.refused.get(status, 0) + 1

    # ------------------------------------------------------------------ handlers

    async def _append(self, scope: Scope, receive: Receive, send: Send, group_id: bytes) -> None:
        async with self._body(scope, receive, self.limits.max_request_bytes) as body:
            envelopes = self._records(body)
            if not envelopes:
                raise HTTPError(400, "an upload needs at least one envelope")
            if any(envelope_shape(e).kind == KIND_SNAPSHOT for e in envelopes):
                raise HTTPError(400, "snapshot parts go to PUT /v1/snapshot")
            done = await self.storage.append(group_id, envelopes, self._owner(scope))
        self._stats.appended_envelopes += len(envelopes)
        self._stats.appended_bytes += len(body)
        log.info("log %s: appended %d envelopes (%d..%d)", group_id[:4].hex(), len(envelopes),
                 done.first_seq, done.last_seq)
        self._wake(group_id)
        await _respond_json(send, 201, {"first_seq": done.first_seq, "last_seq": done.last_seq})

    async def _pull(self, send: Send, group_id: bytes, query: dict[str, int]) -> None:
        after = query.get("after", 0)
        wait = min(float(query.get("wait", 0)), self.limits.max_wait_s)
        size = await self.storage.pull_size(group_id, after)
        if not size and wait > 0:
            news = self._news.setdefault(group_id, trio.Event())
            self._stats.waiting_pulls += 1
            try:
                with trio.move_on_after(wait):
                    await news.wait()
            finally:
                self._stats.waiting_pulls -= 1
            size = await self.storage.pull_size(group_id, after)
        # The records and the answer made of them: twice the answer's size.
        async with self._holding(2 * size) as held:
            pulled = await self.storage.pull(group_id, after, max_bytes=held // 2)
            await _respond(send, 200, encode_pull(pulled.records), [
                (b"content-type", b"application/octet-stream"),
                (b"mirror-cursor", str(pulled.cursor).encode()),
                (b"mirror-head", str(pulled.head).encode()),
                (b"mirror-covers", str(pulled.covers).encode()),
                (b"mirror-more", b"1" if pulled.more else b"0"),
            ])

    async def _snapshot(self, scope: Scope, receive: Receive, send: Send, group_id: bytes,
                        query: dict[str, int]) -> None:
        if "covers" not in query:
            raise HTTPError(400, "PUT /v1/snapshot needs ?covers=N")
        async with self._body(scope, receive, self.limits.max_request_bytes) as body:
            parts = self._records(body, limit=self.limits.max_snapshot_parts)
            if any(envelope_shape(p).kind != KIND_SNAPSHOT for p in parts):
                raise HTTPError(400, "a snapshot holds snapshot parts only")
            dropped = await self.storage.put_snapshot(group_id, query["covers"], parts,
                                                      self._owner(scope))
        self._stats.snapshots += 1
        log.info("log %s: snapshot of %d parts covers %d; dropped %d envelopes",
                 group_id[:4].hex(), len(parts), query["covers"], dropped)
        self._wake(group_id)
        await _respond_json(send, 200, {"covers": query["covers"], "dropped": dropped})

    async def _retire(self, scope: Scope, receive: Receive, send: Send, group_id: bytes) -> None:
        async with self._body(scope, receive, self.limits.max_forward_bytes) as body:
            parts = self._records(body, limit=4)
            if any(envelope_shape(p).kind != KIND_SNAPSHOT for p in parts):
                raise HTTPError(400, "a forwarding notice holds snapshot parts only")
            await self.storage.retire(group_id, encode_pull((0, p) for p in parts),
                                      self._owner(scope))
        log.info("log %s: retired", group_id[:4].hex())
        self._wake(group_id)
        await _respond_json(send, 200, {"retired": True})

    @asynccontextmanager
    async def _holding(self, size: int) -> AsyncIterator[int]:
        """Reserve *size* bytes of the budget (503 after ``buffer_wait_s``)."""
        try:
            reservation = self.budget.reserve(size, self.limits.buffer_wait_s)
            held = await reservation.__aenter__()
        except BudgetTimeout:
            raise HTTPError(503, "the store is busy: retry shortly",
                            [(b"retry-after", b"1")]) from None
        try:
            yield held
        finally:
            await reservation.__aexit__(None, None, None)

    @asynccontextmanager
    async def _body(self, scope: Scope, receive: Receive,
                    limit: int) -> AsyncIterator[bytearray]:
        """The request's body, read once its share of the budget is reserved: twice its
        Content-Length (the body, then its envelopes), or twice *limit* without one."""
        length = _content_length(scope, limit)
        size = limit if length is None else length
        async with self._holding(2 * size):
            try:
                with trio.fail_after(BODY_TIMEOUT_S + size / MIN_BODY_BYTES_PER_S):
                    body = await _read_body(receive, length, limit)
            except trio.TooSlowError:
                raise HTTPError(408, "the body came too slowly") from None
            yield body

    def _owner(self, scope: Scope) -> bytes:
        client = scope.get("client")
        return self.storage.owner_of(str(client[0]) if client else "?")

    async def metrics_text(self) -> str:
        """Prometheus text: usage against the quotas, requests, the memory budget."""
        figures = await self.storage.figures()
        limits, stats = self.limits, self.statistics()
        lines = [
            ("blindstore_bytes", "gauge", "Bytes of all logs and forwarding notices.",
             figures.bytes),
            ("blindstore_quota_bytes", "gauge", "The store's total quota in bytes.",
             limits.max_store_bytes),
            ("blindstore_logs", "gauge", "Logs kept, live or retired.", figures.logs),
            ("blindstore_retired_logs", "gauge", "Retired logs kept (with their notice).",
             figures.retired_logs),
            ("blindstore_tombstones", "gauge",
             "Retired logs past their time: only their token is still refused.",
             figures.tombstones),
            ("blindstore_quota_tombstones", "gauge", "Tombstones kept at most.",
             limits.max_tombstones),
            ("blindstore_quota_logs", "gauge", "The store's quota of logs.", limits.max_groups),
            ("blindstore_address_quota_bytes", "gauge",
             "Bytes the logs created from one address may hold.", limits.max_address_bytes),
            ("blindstore_address_quota_logs", "gauge",
             "Logs (live or retired) one address may create.", limits.max_address_logs),
            ("blindstore_retired_keep_days", "gauge",
             "Days a retired log keeps its notice and its charges.", limits.retired_keep_days),
            ("blindstore_owners", "gauge",
             "Address hashes with logs charged to them.", figures.owners),
            ("blindstore_owners_at_quota", "gauge",
             "Address hashes at their quota of bytes or logs.", figures.owners_at_quota),
            ("blindstore_largest_owner_bytes", "gauge",
             "Bytes charged to the address hash with the most.", figures.largest_owner_bytes),
            ("blindstore_buffered_bytes", "gauge",
             "Bytes reserved for requests in flight.", stats.buffered_bytes),
            ("blindstore_buffered_bytes_peak", "gauge",
             "The most bytes ever reserved for requests at once.", stats.peak_buffered_bytes),
            ("blindstore_buffer_bytes", "gauge",
             "Bytes requests in flight may hold together.", limits.max_buffered_bytes),
            ("blindstore_buffer_waiting", "gauge",
             "Requests waiting for their share of the buffer.", stats.buffer_waiting),
            ("blindstore_waiting_pulls", "gauge",
             "Pulls held open now, waiting for news of their log.", stats.waiting_pulls),
            ("blindstore_requests_total", "counter", "Requests.", stats.requests),
        ]
        text = "".join(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name} {value}\n"
                       for name, kind, help_text, value in lines)
        text += ("# HELP blindstore_refused_total Requests answered with an error, by status.\n"
                 "# TYPE blindstore_refused_total counter\n")
        text += "".join(f'blindstore_refused_total{{status="{status}"}} {count}\n'
                        for status, count in sorted(stats.refused.items()))
        return text

    def _records(self, body: bytes | bytearray, limit: int | None = None) -> list[bytes]:
        try:
            return decode_upload(body, max_records=limit or self.limits.max_envelopes_per_request)
        except RemoteProtocolError as exc:
            raise HTTPError(400, f"malformed body: {exc}") from None

    def _wake(self, group_id: bytes) -> None:
        news = self._news.pop(group_id, None)
        if news is not None:
            news.set()

    def _rate_limit(self, scope: Scope) -> None:
        client = scope.get("client")
        address = address_key(str(client[0])) if client else "?"
        now = self._clock()
        allowance, last = self._buckets.pop(address, (float(self.limits.request_burst), now))
        allowance = min(float(self.limits.request_burst),
                        allowance + (now - last) * self.limits.requests_per_s)
        if allowance < 1:
            self._buckets[address] = (allowance, now)
            raise HTTPError(429, "too many requests; slow down", [(b"retry-after", b"1")])
        self._buckets[address] = (allowance - 1, now)
        while len(self._buckets) > MAX_TRACKED_ADDRESSES:
            self._buckets.popitem(last=False)


def build_blind_store_app(home: Path, limits: StoreLimits | None = None, *,
                          database: str | None = None) -> BlindStoreApp:
    """The blind store serving from ``home/blind-store.db`` (created if missing), or
    from the PostgreSQL *database* (``postgresql://...``) that several instances share."""
    limits = limits or StoreLimits()
    return BlindStoreApp(BlindStorage.open(home, limits, database=database), limits)


# --------------------------------------------------------------------------- HTTP helpers


def _route_path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    if root and path.startswith(root):
        path = path[len(root):]
    return path or "/"


def _allow(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        raise HTTPError(405, f"{method or 'this method'} is not allowed here",
                        [(b"allow", ", ".join(allowed).encode())])


def _token(scope: Scope) -> bytes:
    values = [v for k, v in scope.get("headers", []) if k.lower() == b"authorization"]
    match = BEARER.fullmatch(values[0]) if len(values) == 1 else None
    if match is None:
        raise HTTPError(401, "send Authorization: Bearer <64 lowercase hex digits>",
                        [(b"www-authenticate", b'Bearer realm="mirror-blind-store"')])
    return bytes.fromhex(match.group(1).decode("ascii"))


def _query(scope: Scope, allowed: set[str]) -> dict[str, int]:
    raw = scope.get("query_string", b"")
    if len(raw) > MAX_QUERY_BYTES:
        raise HTTPError(400, "query string too long")
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise HTTPError(400, "malformed query string") from None
    out: dict[str, int] = {}
    for key, value in pairs:
        if key not in allowed or key in out:
            raise HTTPError(400, f"unexpected query parameter {key[:32]!r}")
        if not NUMBER.fullmatch(value):
            raise HTTPError(400, f"{key} must be a whole number")
        out[key] = int(value)
    return out


def _content_length(scope: Scope, limit: int) -> int | None:
    """The request's Content-Length (413 over *limit*), None without one."""
    for key, value in scope.get("headers", []):
        if key.lower() == b"content-length":
            if not value.isdigit() or len(value) > 18:
                raise HTTPError(400, "malformed Content-Length")
            if int(value) > limit:
                raise HTTPError(413, f"body over {limit} bytes")
            return int(value)
    return None


async def _read_body(receive: Receive, length: int | None, limit: int) -> bytearray:
    """Read the body into one buffer: of *length* bytes if known (no copy to join)."""
    body = bytearray(length or 0)
    size = 0
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            raise HTTPError(400, "client went away")
        chunk = message.get("body", b"")
        if size + len(chunk) > (limit if length is None else length):
            raise HTTPError(413 if length is None else 400,
                            f"body over {limit if length is None else length} bytes")
        if length is None:
            body += chunk
        else:
            body[size:size + len(chunk)] = chunk
        size += len(chunk)
        if not message.get("more_body", False):
            if length is not None and size != length:
                raise HTTPError(400, "body shorter than its Content-Length")
            return body


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def _respond(send: Send, status: int, body: bytes,
                   headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _respond_json(send: Send, status: int, data: dict[str, Any]) -> None:
    await _respond(send, status, json.dumps(data).encode(),
                   [(b"content-type", b"application/json")])


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
