"""The Commons hub: what the server accepts, keeps, deletes and shows.

Theory of operation
-------------------
Sessions (``session.py``) and the HTTP API (``app.py``) call the hub; the hub
calls the store. An update is accepted only when, in this order: its id is a
Commons id that was never withdrawn or removed; every envelope of its bundle is
canonical and signed by the owner named in the id (``crdt.commons``); the
owner is not blocked; the author's and the address's token buckets have a
token for each envelope; and the document, with the update applied to a
scratch copy, still reads as a valid item. Then the envelopes and what the
item says are committed, and only after COMMIT is the update forwarded to the
other live sessions. Anything refused changes nothing.

Errors raised to callers::

    Refused                 the request is well-formed but not allowed
    ├── RateLimited         a token bucket is empty (message says which and the limit)
    ├── Blocked             the operator blocked this author
    ├── Gone                withdrawn or removed: never accepted again
    └── NotOperator         a moderation request not signed by the operator key
    crdt.commons.CommonsError  (ForgedUpdate, MalformedEnvelope, ...) for bad input
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import nacl.signing
import trio
from pycrdt import Doc

from crdt.commons import (
    MODERATION_CONTEXT,
    THREAD_KINDS,
    AnyKey,
    Envelope,
    InvalidCommonsId,
    InvalidItem,
    apply_update,
    doc_from_envelopes,
    encode_bundle,
    moderation_digest,
    parse_doc_id,
    public_group_secret,
    read_item,
    verify_bundle,
    verify_signature,
    verify_withdrawal,
)
from protocol import COMMONS, CatalogueEntry, Credentials, state_vector_digest

from . import limits as L
from .limits import CommonsLimits
from .store import CommonsStore, checkpoint_and_vacuum

log = logging.getLogger("mirror.commons")

ACTIONS = ("hide", "unhide", "remove", "block", "unblock")
_EMPTY_SV = Doc().get_state()


class Refused(Exception):
    """A well-formed request the server does not allow (one-line reason)."""

    status = 403


class RateLimited(Refused):
    status = 429


class Blocked(Refused):
    pass


class Gone(Refused):
    status = 410


class NotOperator(Refused):
    pass


class Listener(Protocol):
    def deliver(self, doc_id: str, bundle: bytes) -> None: ...


@dataclass
class DocMeta:
    kind: str
    author: str
    thread: str
    hidden: bool
    state_vector: bytes
    received_seq: int

    @property
    def sv_digest(self) -> bytes:
        return state_vector_digest(self.state_vector)


class TokenBuckets:
    """One bucket per key: holds *per_minute* tokens and refills at that rate."""

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.capacity = float(per_minute)
        self.rate_per_s = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def available(self, key: str) -> float:
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        return min(self.capacity, tokens + (now - at) * self.rate_per_s)

    def take(self, key: str, n: int = 1) -> bool:
        now = self.clock()
        tokens = self.available(key)
        if tokens < n:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - n, now)
        if len(self._buckets) > 100_000:  # bounded: forget full buckets
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.capacity}
        return True


@dataclass
class HubStatistics:
    documents: int = 0
    accepted_updates: int = 0
    refused_updates: int = 0
    withdrawn: int = 0
    sessions: int = 0
    refusals: dict[str, int] = field(default_factory=dict)


def utc_text(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Hub:
    def __init__(
        self,
        store: CommonsStore,
        server_seed: bytes,
        *,
        operator_key: bytes | None = None,
        limits: CommonsLimits | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.server_seed = server_seed
        self.server_key = bytes(nacl.signing.SigningKey(server_seed).verify_key)
        self.operator_key = operator_key
        self.limits = limits or CommonsLimits()
        self.clock = clock or trio.current_time
        self.wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._by_author = TokenBuckets(self.limits.author_updates_per_minute, self._now)
        self._by_address = TokenBuckets(self.limits.address_updates_per_minute, self._now)
        self.requests = TokenBuckets(self.limits.address_requests_per_minute, self._now)
        self.docs: dict[str, DocMeta] = {}
        self.withdrawn: set[str] = set()
        self.blocked: set[str] = set()
        self._cache: OrderedDict[str, Doc[Any]] = OrderedDict()
        self._locks: dict[str, trio.Lock] = {}
        self._listeners: set[Listener] = set()
        self._seq = 0
        self.stats = HubStatistics()
        self.observers: list[Callable[[str, object], None]] = []
        """Test hook: called with (address, decoded message) for everything clients send."""

    def _now(self) -> float:
        return self.clock()

    # ------------------------------------------------------------------ startup

    async def load(self) -> None:
        def reading(conn: sqlite3.Connection) -> tuple[list[Any], list[Any], list[Any]]:
            docs = conn.execute(
                "SELECT doc_id, kind, author, thread, hidden, state_vector, received_seq "
                "FROM documents"
            ).fetchall()
            gone = conn.execute("SELECT doc_id FROM withdrawn").fetchall()
            blocked = conn.execute("SELECT author FROM blocked").fetchall()
            return docs, gone, blocked

        docs, gone, blocked = await self.store.read(reading)
        for doc_id, kind, author, thread, hidden, sv, seq in docs:
            self.docs[doc_id] = DocMeta(kind, author, thread, bool(hidden), bytes(sv), int(seq))
            self._seq = max(self._seq, int(seq))
        self.withdrawn = {r[0] for r in gone}
        self.blocked = {r[0] for r in blocked}

    def credentials(self) -> Credentials:
        """The server's side of every Commons handshake: anyone may read."""
        return Credentials(
            device_seed=self.server_seed,
            group_secret=public_group_secret(self.server_key),
            epoch=0,
            known_devices=AnyKey(),
        )

    # ------------------------------------------------------------------ sessions

    def subscribe(self, listener: Listener) -> None:
        self._listeners.add(listener)
        self.stats.sessions = len(self._listeners)

    def unsubscribe(self, listener: Listener) -> None:
        self._listeners.discard(listener)
        self.stats.sessions = len(self._listeners)

    def observe(self, address: str, message: object) -> None:
        for observer in self.observers:
            observer(address, message)

    def catalogue(self) -> list[CatalogueEntry]:
        """Visible documents a reader may fetch (the newest ``MAX_CATALOGUE_DOCS``)."""
        visible = [(m.received_seq, d, m) for d, m in self.docs.items() if not m.hidden]
        visible.sort(reverse=True)
        return [CatalogueEntry(d, COMMONS, m.sv_digest) for _, d, m in
                visible[:L.MAX_CATALOGUE_DOCS]]

    def state_vector(self, doc_id: str) -> bytes | None:
        """Our state vector for an update a client offers, or None if we refuse the id."""
        try:
            parse_doc_id(doc_id)
        except InvalidCommonsId:
            return None
        if doc_id in self.withdrawn:
            return None
        meta = self.docs.get(doc_id)
        return meta.state_vector if meta else _EMPTY_SV

    async def bundle(self, doc_id: str) -> bytes:
        """Every stored envelope of *doc_id*: the owner's own signatures, for any reader."""
        meta = self.docs.get(doc_id)
        if meta is None or meta.hidden:
            return encode_bundle([])
        rows = await self.store.read(lambda c: c.execute(
            "SELECT data FROM envelopes WHERE doc_id = ? ORDER BY seq", (doc_id,)).fetchall())
        return encode_bundle(bytes(r[0]) for r in rows)

    # ------------------------------------------------------------------ accepting

    def _refuse(self, exc: Refused) -> Refused:
        self.stats.refused_updates += 1
        name = type(exc).__name__
        self.stats.refusals[name] = self.stats.refusals.get(name, 0) + 1
        return exc

    async def accept(self, doc_id: str, data: bytes, address: str,
                     source: Listener | None = None) -> int:
        """Verify and store a bundle for *doc_id*; returns how many envelopes were new."""
        cid = parse_doc_id(doc_id)
        if doc_id in self.withdrawn:
            raise self._refuse(Gone(f"{doc_id} was withdrawn or removed"))
        envelopes = verify_bundle(doc_id, data)
        if not envelopes:
            return 0
        author = cid.owner_hex
        if author in self.blocked:
            raise self._refuse(Blocked("this author key is blocked by the operator"))
        n = len(envelopes)
        # Check both buckets before taking from either: a refusal costs no tokens.
        if self._by_author.available(author) < n:
            raise self._refuse(RateLimited(
                f"rate limit: {self.limits.author_updates_per_minute} updates per minute "
                "per author"))
        if self._by_address.available(address) < n:
            raise self._refuse(RateLimited(
                f"rate limit: {self.limits.address_updates_per_minute} updates per minute "
                "per address"))
        self._by_author.take(author, n)
        self._by_address.take(address, n)
        lock = self._locks.setdefault(doc_id, trio.Lock())
        async with lock:
            try:
                return await self._accept_locked(doc_id, envelopes, source)
            finally:
                if not lock.statistics().tasks_waiting:
                    self._locks.pop(doc_id, None)

    async def _accept_locked(self, doc_id: str, envelopes: list[Envelope],
                             source: Listener | None) -> int:
        cid = parse_doc_id(doc_id)
        current = await self._doc(doc_id)
        scratch: Doc[Any] = Doc()
        if current is not None:
            apply_update(scratch, current.get_update())
        for env in envelopes:
            apply_update(scratch, env.update)
        item = read_item(doc_id, scratch)  # InvalidItem: nothing is stored
        if cid.kind in ("comment", "reaction") and item.thread in self.withdrawn:
            raise self._refuse(Gone("the thread was withdrawn or removed"))
        meta = self.docs.get(doc_id)
        seq = meta.received_seq if meta else self._seq + 1
        self._seq = max(self._seq, seq)
        sv = scratch.get_state()
        rows = [(doc_id, hashlib.blake2b(e.raw, digest_size=16).digest(), e.raw)
                for e in envelopes]

        def writing(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO envelopes(doc_id, digest, data) VALUES (?, ?, ?)", rows)
            added = conn.total_changes - before
            conn.execute(
                "INSERT INTO documents(doc_id, kind, author, thread, title, body, reaction, "
                "created_at, received_seq, state_vector) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(doc_id) DO UPDATE SET title=excluded.title, body=excluded.body, "
                "reaction=excluded.reaction, thread=excluded.thread, "
                "created_at=excluded.created_at, state_vector=excluded.state_vector",
                (doc_id, cid.kind, cid.owner_hex, item.thread, item.title, item.body,
                 item.reaction, item.created_at, seq, sv),
            )
            return added

        added = await self.store.write(writing)
        if doc_id in self.withdrawn:  # withdrawn while we were writing: undo
            await self._delete(doc_id, "owner")
            raise Gone(f"{doc_id} was withdrawn")
        hidden = meta.hidden if meta else False
        self.docs[doc_id] = DocMeta(cid.kind, cid.owner_hex, item.thread, hidden, sv, seq)
        self._remember(doc_id, scratch)
        self.stats.accepted_updates += len(envelopes)
        self.stats.documents = len(self.docs)
        if added and not hidden:
            bundle = encode_bundle(e.raw for e in envelopes)
            for listener in list(self._listeners):
                if listener is not source:
                    listener.deliver(doc_id, bundle)
        return added

    async def _doc(self, doc_id: str) -> Doc[Any] | None:
        doc = self._cache.get(doc_id)
        if doc is not None:
            self._cache.move_to_end(doc_id)
            return doc
        if doc_id not in self.docs:
            return None
        rows = await self.store.read(lambda c: c.execute(
            "SELECT data FROM envelopes WHERE doc_id = ? ORDER BY seq", (doc_id,)).fetchall())
        doc = doc_from_envelopes(bytes(r[0]) for r in rows)
        self._remember(doc_id, doc)
        return doc

    def _remember(self, doc_id: str, doc: Doc[Any]) -> None:
        self._cache[doc_id] = doc
        self._cache.move_to_end(doc_id)
        while len(self._cache) > L.DOC_CACHE_ENTRIES:
            self._cache.popitem(last=False)

    # ------------------------------------------------------------------ deleting

    async def withdraw(self, doc_id: str, signature: bytes) -> None:
        """The owner's signed request: delete every byte of *doc_id* and refuse it from now on."""
        verify_withdrawal(doc_id, signature)  # ForgedUpdate if not the owner's
        await self._delete(doc_id, "owner")

    async def _delete(self, doc_id: str, by: str) -> None:
        self.withdrawn.add(doc_id)
        self.docs.pop(doc_id, None)
        self._cache.pop(doc_id, None)
        at = utc_text(self.wall_clock())

        def deleting(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM envelopes WHERE doc_id = ?", (doc_id,))
            conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            conn.execute("INSERT OR IGNORE INTO withdrawn(doc_id, at, by) VALUES (?, ?, ?)",
                         (doc_id, at, by))

        await self.store.write(deleting)
        await self.store.maintenance(checkpoint_and_vacuum)
        self.stats.withdrawn += 1
        self.stats.documents = len(self.docs)

    # ------------------------------------------------------------------ moderation

    async def moderate(self, action: str, target: str, reason: str, at: str,
                       operator: bytes, signature: bytes) -> dict[str, Any]:
        """Apply a signed operator action and append it to the public log."""
        if self.operator_key is None:
            raise NotOperator("this server has no operator key configured")
        if operator != self.operator_key:
            raise NotOperator("not signed by this server's operator key")
        if action not in ACTIONS:
            raise InvalidItem(f"unknown action {action!r}")
        if len(reason) > L.MAX_REASON_CHARS:
            raise InvalidItem(f"reason longer than {L.MAX_REASON_CHARS} characters")
        try:
            when = datetime.strptime(at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise InvalidItem("'at' must be a UTC time like 2026-01-31T12:00:00Z") from None
        if abs((self.wall_clock() - when).total_seconds()) > L.MODERATION_CLOCK_SKEW_S:
            raise NotOperator("the action's time is too far from the server's clock")
        fields = {"action": action, "target": target, "reason": reason, "at": at}
        verify_signature(operator, MODERATION_CONTEXT, moderation_digest(fields), signature)
        if action in ("block", "unblock"):
            if len(target) != 64 or not all(c in "0123456789abcdef" for c in target):
                raise InvalidItem("block and unblock take an author key (64 hex digits)")
        else:
            parse_doc_id(target)
        sig_hex = signature.hex()

        def logging_(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO modlog(at, action, target, reason, operator, signature) "
                "VALUES (?, ?, ?, ?, ?, ?)", (at, action, target, reason, operator.hex(), sig_hex))
            if action in ("hide", "unhide"):
                conn.execute("UPDATE documents SET hidden = ? WHERE doc_id = ?",
                             (int(action == "hide"), target))
            elif action == "block":
                conn.execute("INSERT OR IGNORE INTO blocked(author, at) VALUES (?, ?)",
                             (target, at))
            elif action == "unblock":
                conn.execute("DELETE FROM blocked WHERE author = ?", (target,))

        try:
            await self.store.write(logging_)
        except Exception as exc:
            if "UNIQUE" in str(exc.__cause__ or exc):
                raise Refused("this action was already applied (replayed signature)") from None
            raise
        if action in ("hide", "unhide") and target in self.docs:
            self.docs[target].hidden = action == "hide"
        elif action == "block":
            self.blocked.add(target)
        elif action == "unblock":
            self.blocked.discard(target)
        elif action == "remove":
            await self._delete(target, "operator")
        return {"action": action, "target": target, "reason": reason, "at": at}

    # ------------------------------------------------------------------ reading (web, API)

    async def threads(self, page: int) -> list[dict[str, Any]]:
        offset = (page - 1) * L.THREADS_PER_PAGE
        kinds = tuple(THREAD_KINDS)

        def reading(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT d.doc_id, d.kind, d.author, d.title, d.created_at, "
                "(SELECT COUNT(*) FROM documents c WHERE c.thread = d.doc_id "
                " AND c.kind = 'comment' AND c.hidden = 0) "
                "FROM documents d WHERE d.kind IN (?, ?) AND d.hidden = 0 "
                "ORDER BY d.received_seq DESC LIMIT ? OFFSET ?",
                (*kinds, L.THREADS_PER_PAGE, offset)).fetchall()
            return [{"doc_id": r[0], "kind": r[1], "author": r[2], "title": r[3],
                     "created_at": r[4], "comments": r[5]} for r in rows]

        return await self.store.read(reading)

    async def thread(self, doc_id: str) -> dict[str, Any] | None:
        """A post or insight with its visible comments and reaction counts."""
        meta = self.docs.get(doc_id)
        if meta is None or meta.hidden or meta.kind not in THREAD_KINDS:
            return None

        def reading(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute(
                "SELECT kind, author, title, body, created_at FROM documents "
                "WHERE doc_id = ? AND hidden = 0", (doc_id,)).fetchone()
            if row is None:
                return None
            comments = conn.execute(
                "SELECT doc_id, author, body, created_at FROM documents WHERE thread = ? "
                "AND kind = 'comment' AND hidden = 0 ORDER BY received_seq LIMIT ?",
                (doc_id, L.MAX_COMMENTS_PER_PAGE)).fetchall()
            reactions = conn.execute(
                "SELECT reaction, COUNT(*) FROM documents WHERE thread = ? "
                "AND kind = 'reaction' AND hidden = 0 GROUP BY reaction ORDER BY 2 DESC, 1",
                (doc_id,)).fetchall()
            return {
                "doc_id": doc_id, "kind": row[0], "author": row[1], "title": row[2],
                "body": row[3], "created_at": row[4],
                "comments": [{"doc_id": c[0], "author": c[1], "body": c[2], "created_at": c[3]}
                             for c in comments],
                "reactions": {r[0]: r[1] for r in reactions},
            }

        return await self.store.read(reading)

    async def moderation_log(self) -> list[dict[str, Any]]:
        rows = await self.store.read(lambda c: c.execute(
            "SELECT seq, at, action, target, reason, operator, signature FROM modlog "
            "ORDER BY seq DESC LIMIT ?", (L.MODERATION_LOG_PAGE,)).fetchall())
        return [{"seq": r[0], "at": r[1], "action": r[2], "target": r[3], "reason": r[4],
                 "operator": r[5], "signature": r[6]} for r in rows]

    def info(self) -> dict[str, Any]:
        return {
            "service": "mirror-commons",
            "protocol": "/v1/commons",
            "server_key": self.server_key.hex(),
            "operator_key": self.operator_key.hex() if self.operator_key else None,
            "documents": len(self.docs),
            "limits": {
                "author_updates_per_minute": self.limits.author_updates_per_minute,
                "address_updates_per_minute": self.limits.address_updates_per_minute,
                "address_requests_per_minute": self.limits.address_requests_per_minute,
            },
        }
