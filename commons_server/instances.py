"""Several Commons instances over one database: what each tells the others, and the
limits they share.

Theory of operation
-------------------
Every instance serves the same Commons: the documents, their envelopes and the
moderation state are in the shared store, so a read through any instance sees
what any other accepted once that instance has applied it. Each instance keeps
an in-memory index (``index.py``) and its live sessions, so it must hear of
every change another made. After its store's COMMIT, the instance that accepted
an update, withdrew a document or applied a moderation action announces it on
the database's ``mirror_commons`` channel (PostgreSQL NOTIFY, ``pg_listen.py``):
the ids of the documents it changed, and whether the moderation state changed.
Every other instance then refreshes its store, re-reads the moderation state if
told to, re-indexes the named documents and pushes them to its live sessions
(``Hub.follow``). An instance that lost the channel (PostgreSQL restarted) gets
a resync and re-reads everything.

An announcement is sent after COMMIT, so no instance hears of a change that
was not kept. An instance that dies between its COMMIT and its announcement
leaves the others without that news until their next resync; the change itself
is kept, and readers get it through any instance that loads the document.

Rate limits that must hold across instances (updates per author, per address)
are token buckets in the database (:class:`SharedBuckets`, table
``commons_server.rate_buckets``), taken in one
transaction with row locks, on the database's clock. Requests per address and
sessions per address stay per instance: they protect each instance's own
resources, and HAProxy spreads one address's connections over the instances.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from .pg_listen import MAX_PAYLOAD_BYTES, RESYNC, PgListener, PgNotifier

log = logging.getLogger("mirror.commons.instances")

CHANNEL = "mirror_commons"
BUCKETS_TABLE = "commons_server.rate_buckets"
"""In a schema of its own: the document store owns the database's public schema."""
SCHEMA_LOCK = 0x6D69_7272_6F72_0003
"""pg_advisory_xact_lock key of making the table (instances start together)."""
FORGET_FULL_BUCKETS_EVERY = 1_000
"""Takes between two sweeps of buckets that have refilled (bounded table)."""


class BusError(Exception):
    """The other instances could not be told (the database is unreachable)."""


class LimitsUnavailable(Exception):
    """The shared rate limits could not be read (the database is unreachable)."""


@dataclass(frozen=True)
class Notice:
    """What another instance committed: documents changed, moderation changed."""

    instance: str
    doc_ids: tuple[str, ...]
    moderation: bool


Deliver = Callable[[Notice | None], None]
"""Called with each notice of another instance; None after news may have been lost."""


class InstanceBus(Protocol):
    instance: str

    async def announce(self, doc_ids: Sequence[str], *, moderation: bool = False) -> None: ...

    async def run(self, deliver: Deliver, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None: ...

    def close(self) -> None: ...


def encode_notices(instance: str, doc_ids: Sequence[str], moderation: bool) -> list[str]:
    """Payloads of at most ``MAX_PAYLOAD_BYTES`` each, together naming every id."""
    payloads: list[str] = []
    batch: list[str] = []

    def flush(last: bool) -> None:
        payloads.append(json.dumps({"i": instance, "d": batch, "m": moderation and last},
                                   separators=(",", ":")))

    size = 64
    for doc_id in doc_ids:
        if batch and size + len(doc_id.encode()) + 4 > MAX_PAYLOAD_BYTES:
            flush(False)
            batch, size = [], 64
        batch.append(doc_id)
        size += len(doc_id.encode()) + 4
    flush(True)
    return payloads


def decode_notice(payload: str) -> Notice | None:
    try:
        value = json.loads(payload)
        instance, doc_ids, moderation = value["i"], value["d"], value["m"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(instance, str) and isinstance(doc_ids, list)
            and all(isinstance(d, str) for d in doc_ids) and isinstance(moderation, bool)):
        return None
    return Notice(instance, tuple(doc_ids), moderation)


class PgInstanceBus:
    """The instances of one PostgreSQL database (LISTEN/NOTIFY on :data:`CHANNEL`)."""

    def __init__(self, url: str, instance: str) -> None:
        self.url = url
        self.instance = instance
        self._notifier = PgNotifier(url)
        self.listener = PgListener(url, [CHANNEL])

    async def announce(self, doc_ids: Sequence[str], *, moderation: bool = False) -> None:
        if not doc_ids and not moderation:
            return
        import psycopg

        try:
            for payload in encode_notices(self.instance, doc_ids, moderation):
                await self._notifier.notify(CHANNEL, payload)
        except psycopg.Error as exc:
            raise BusError(str(exc).strip() or type(exc).__name__) from None

    async def run(self, deliver: Deliver, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        def on_note(channel: str, payload: str) -> None:
            if (channel, payload) == RESYNC:
                deliver(None)
                return
            notice = decode_notice(payload)
            if notice is None:
                log.warning("ignoring a notification that is not a Commons notice")
            elif notice.instance != self.instance:
                deliver(notice)

        await self.listener.run(on_note, task_status=task_status)

    def close(self) -> None:
        self._notifier.close()


class SharedBuckets:
    """Token buckets in a PostgreSQL table: one limit for all instances.

    Each bucket holds *capacity* tokens and refills at *capacity* per minute, like
    ``hub.TokenBuckets``, but on the database's clock and under row locks."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._lock = trio.Lock()
        self._thread_lock = threading.Lock()
        self._takes = 0

    async def take(self, wants: Sequence[tuple[str, int, int]]) -> int | None:
        """Take *n* tokens from each ``(key, per_minute, n)``, all or none; returns
        None if taken, else the index of the first bucket that had too few."""
        async with self._lock:
            result: int | None = await trio.to_thread.run_sync(self._take, list(wants))
            return result

    def _connect(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True)
            with self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                self._conn.execute("CREATE SCHEMA IF NOT EXISTS commons_server")
                self._conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {BUCKETS_TABLE} (key TEXT PRIMARY KEY, "
                    "tokens DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL)")
        return self._conn

    def _take(self, wants: list[tuple[str, int, int]]) -> int | None:
        import psycopg

        with self._thread_lock:
            for attempt in (1, 2):  # a connection the database dropped: once more, anew
                try:
                    return self._take_locked(wants)
                except psycopg.OperationalError as exc:
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        text = str(exc).strip()
                        raise LimitsUnavailable(text.splitlines()[0] if text else
                                                type(exc).__name__) from None
            raise AssertionError("unreachable")

    def _take_locked(self, wants: list[tuple[str, int, int]]) -> int | None:
        conn = self._connect()
        order = sorted(range(len(wants)), key=lambda i: wants[i][0])  # no deadlocks
        with conn.transaction():
            (now,) = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8"
                                  ).fetchone()
            for i in order:
                key, per_minute, _ = wants[i]
                conn.execute(f"INSERT INTO {BUCKETS_TABLE} VALUES (%s, %s, %s) "
                             "ON CONFLICT (key) DO NOTHING", (key, float(per_minute), now))
            available: dict[int, float] = {}
            for i in order:
                key, per_minute, n = wants[i]
                tokens, at = conn.execute(
                    f"SELECT tokens, at FROM {BUCKETS_TABLE} WHERE key=%s FOR UPDATE", (key,)
                ).fetchone()
                available[i] = min(float(per_minute),
                                   tokens + max(0.0, now - at) * per_minute / 60.0)
            for i in range(len(wants)):
                if available[i] < wants[i][2]:
                    return i
            for i in order:
                key, _, n = wants[i]
                conn.execute(f"UPDATE {BUCKETS_TABLE} SET tokens=%s, at=%s WHERE key=%s",
                             (available[i] - n, now, key))
        self._takes += 1
        if self._takes % FORGET_FULL_BUCKETS_EVERY == 0:  # refilled for a minute: full
            conn.execute(f"DELETE FROM {BUCKETS_TABLE} WHERE at < %s", (now - 120.0,))
        return None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
