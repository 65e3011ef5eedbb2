"""The Commons hub: what the server accepts, keeps, deletes and shows.

Theory of operation
-------------------
Sessions and the HTTP API (``app.py``) call the hub; the hub keeps everything
in the server's DocStore, the same document store a node uses
(spec/commons.md, "Storage"): each Commons document with the owner-signed
envelopes it arrived in (``DocStore.apply_enveloped``), and the moderation
state in one local document (``moderation.py``). What the documents say is
indexed in memory (``index.py``) and rebuilt from the store at start.

An update is accepted only when, in this order: its id is a Commons id that
was never withdrawn or removed; every envelope of its bundle is canonical and
signed by the owner named in the id, for this server (``crdt.commons``: an
envelope signed for another server, or an unbound one of version 1, is
refused, so a post withdrawn elsewhere cannot be republished here); the owner is not
blocked; the author's and the address's token buckets have a token for each
envelope; and the document, with the update applied to a scratch copy, still
reads as a valid item. Then the update and its envelopes are committed, and
only after COMMIT is the update forwarded to the other live sessions.
Anything refused changes nothing.

A withdrawal or an operator's removal records the id as withdrawn, then
deletes the document from the store and rewrites the file (VACUUM, WAL
truncated) so its bytes are gone; a document found withdrawn at start (a crash
between the two) is deleted then. A thread goes with its comments and
reactions, whoever wrote them: they are tombstoned too (``by`` =
``WITH_THREAD``), deleted in the same rewrite. Tombstones are kept only for
documents this server held, so they are bounded by what it accepted: a
withdrawal of an id it never held is answered and forgotten, and a comment or
reaction that arrives later for a gone thread is refused (``Gone``) and only
remembered, in memory and up to ``MAX_REMEMBERED_REFUSALS``, so its author's
node is not asked for it again. Readers learn what to drop by asking about the
ids they hold (:meth:`Hub.moderation_of`); the newest-first lists of
:meth:`Hub.moderated_lists` remain for readers of earlier builds.

A document is *withheld* while the operator hides it or blocks its author, or
while its thread is withheld for one of those reasons: it stays in the store
but is offered, served and shown nowhere (``DocMeta.hidden``), and comes back
with ``unhide`` / ``unblock``. Readers learn what to drop from their caches
from :meth:`Hub.moderated_lists` (``GET /api/v1/withdrawn``: ids and author
keys only, never content).

Several instances over one database (``instances.py``): each announces what
it committed (accepted updates, deletions, moderation) after its COMMIT, and
:meth:`Hub.follow` applies what the others announce — the store is refreshed,
the moderation state re-read, the named documents re-indexed and pushed to this
instance's live sessions; what the store itself reports another process wrote,
and a periodic look at it, catch news that was never announced. The update
limits are then kept in the database (``SharedBuckets``), and the moderation
log's keys carry the writer, so two instances appending at once keep both.

Errors raised to callers::

    Refused                 the request is well-formed but not allowed
    ├── RateLimited         a token bucket is empty (message says which and the limit)
    ├── Blocked             the operator blocked this author
    ├── Gone                withdrawn or removed: never accepted again
    ├── NotOperator         a moderation request not signed by the operator key
    └── Unavailable         the database several instances share cannot be reached now
    crdt.commons.CommonsError  (ForgedUpdate, MalformedEnvelope, ...) for bad input
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import nacl.signing
import trio
from pycrdt import Doc

from crdt import DocInfo, DocStore, DocumentError, StoredDoc, SyncClass
from crdt.commons import (
    DOC_KIND,
    MODERATION_CONTEXT,
    AnyKey,
    CommonsError,
    Envelope,
    InvalidCommonsId,
    InvalidItem,
    Item,
    MalformedEnvelope,
    apply_update,
    encode_bundle,
    is_commons_id,
    moderation_digest,
    parse_doc_id,
    public_group_secret,
    read_item,
    verify_bundle,
    verify_signature,
    verify_withdrawal,
)
from crdt.update_check import same_state
from protocol import COMMONS, CatalogueEntry, Credentials

from . import limits as L
from .index import DocMeta, Index
from .instances import BusError, InstanceBus, LimitsUnavailable, Notice, SharedBuckets
from .limits import CommonsLimits
from .moderation import DOC_ID as MODERATION_DOC_ID
from .moderation import WITH_THREAD, Moderation

log = logging.getLogger("mirror.commons")

ACTIONS = ("hide", "unhide", "remove", "block", "unblock")
ACCEPT_ORIGIN = "mirror.commons:accept"
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


class Unavailable(Refused):
    """The shared database cannot be reached now: nothing was stored; retry later."""

    status = 503


class Listener(Protocol):
    def deliver(self, doc_id: str, bundle: bytes) -> None: ...


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
    followed_changes: int = 0
    """Documents re-read after another instance of the database changed them."""
    refusals: dict[str, int] = field(default_factory=dict)


def utc_text(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Hub:
    def __init__(
        self,
        store: DocStore,
        server_seed: bytes,
        *,
        operator_key: bytes | None = None,
        limits: CommonsLimits | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], datetime] | None = None,
        instances: InstanceBus | None = None,
        shared_limits: SharedBuckets | None = None,
    ) -> None:
        self.store = store
        self.instances = instances
        """The other instances of the same database (None: this one is alone)."""
        self.shared_limits = shared_limits
        """Update limits kept in the database for all instances (None: in memory)."""
        self.server_seed = server_seed
        self.server_key = bytes(nacl.signing.SigningKey(server_seed).verify_key)
        self.operator_key = operator_key
        self.limits = limits or CommonsLimits()
        self.clock = clock or trio.current_time
        self.wall_clock = wall_clock or (lambda: datetime.now(UTC))
        self._by_author = TokenBuckets(self.limits.author_updates_per_minute, self._now)
        self._by_address = TokenBuckets(self.limits.address_updates_per_minute, self._now)
        self.requests = TokenBuckets(self.limits.address_requests_per_minute, self._now)
        self.index = Index()
        self._moderation: Moderation | None = None
        self._recent: OrderedDict[str, None] = OrderedDict()  # loaded docs, LRU order
        self._locks: dict[str, trio.Lock] = {}
        self._refused_children: OrderedDict[str, None] = OrderedDict()
        """Comments and reactions refused because their thread is gone (bounded)."""
        self._listeners: set[Listener] = set()
        self.stats = HubStatistics()
        self.observers: list[Callable[[str, object], None]] = []
        """Test hook: called with (address, decoded message) for everything clients send."""

    def _now(self) -> float:
        return self.clock()

    @property
    def docs(self) -> dict[str, DocMeta]:
        """Every accepted document (hidden ones too) by id."""
        return self.index.docs

    @property
    def moderation(self) -> Moderation:
        if self._moderation is None:
            raise RuntimeError("Hub.load() has not run")
        return self._moderation

    @property
    def withdrawn(self) -> set[str]:
        return self.moderation.withdrawn

    @property
    def blocked(self) -> set[str]:
        return self.moderation.blocked

    # ------------------------------------------------------------------ startup

    async def load(self) -> None:
        """(Re)build the index from the store; finish deletions a crash interrupted."""
        suffix = f".{self.store.client_id}" if self.instances is not None else ""
        self._moderation = await Moderation.open(self.store, suffix)
        self.index = Index()
        order = await self.store.envelope_order()
        orphans = []
        for info in self.store.documents(kind=DOC_KIND):
            doc_id = info.doc_id
            if doc_id in self.withdrawn or not is_commons_id(doc_id):
                log.warning("deleting %s: withdrawn or not a Commons id", doc_id)
                await self.store.delete_doc(doc_id, scrub_file=True)
                continue
            stored = await self.store.open_doc(doc_id, kind=DOC_KIND)
            try:
                item = read_item(doc_id, stored.doc)
            except CommonsError as exc:
                log.warning("not serving %s: %s", doc_id, exc)
                self.store.unload(doc_id)
                continue
            self.store.unload(doc_id)
            if item.thread in self.withdrawn:  # kept by a build before threads took them
                orphans.append(doc_id)
                continue
            seq = order.get(doc_id, 0)
            self.index.put(DocMeta(item, self._withheld(item), stored.doc.get_state(), seq))
        if orphans:
            log.warning("deleting %d comment(s) or reaction(s) of withdrawn threads",
                        len(orphans))
            await self._delete_all(orphans, utc_text(self.wall_clock()), WITH_THREAD)
        self.stats.documents = len(self.index)

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
        return [CatalogueEntry(d, COMMONS, m.sv_digest)
                for d, m in self.index.visible()[:L.MAX_CATALOGUE_DOCS]]

    def state_vector(self, doc_id: str, sv_digest: bytes | None = None) -> bytes | None:
        """Our state vector for a document a client offers with *sv_digest*, or None
        if we refuse the id or already hold exactly that state (a withheld document
        its owner offers: it differs from our catalogue only by being left out of it,
        and asking would have a blocked author's every sync refused)."""
        try:
            parse_doc_id(doc_id)
        except InvalidCommonsId:
            return None
        if doc_id in self.withdrawn or doc_id in self._refused_children:
            return None
        meta = self.docs.get(doc_id)
        if meta is not None and sv_digest is not None and meta.sv_digest == sv_digest:
            return None
        return meta.state_vector if meta else _EMPTY_SV

    async def bundle(self, doc_id: str) -> bytes:
        """Every stored envelope of *doc_id*: the owner's own signatures, for any reader."""
        meta = self.docs.get(doc_id)
        if meta is None or meta.hidden:
            return encode_bundle([])
        return encode_bundle(await self.store.envelopes(doc_id))

    # ------------------------------------------------------------------ accepting

    def _refuse(self, exc: Refused) -> Refused:
        self.stats.refused_updates += 1
        name = type(exc).__name__
        self.stats.refusals[name] = self.stats.refusals.get(name, 0) + 1
        return exc

    async def accept(self, doc_id: str, data: bytes, address: str,
                     source: Listener | None = None) -> int:
        """Verify and store a bundle for *doc_id*; returns how many envelopes it carried
        if it changed the document, else 0."""
        cid = parse_doc_id(doc_id)
        if doc_id in self.withdrawn or doc_id in self._refused_children:
            raise self._refuse(self._gone(doc_id))
        envelopes = verify_bundle(doc_id, data, self.server_key)  # bound to us, never legacy
        if not envelopes:
            return 0
        author = cid.owner_hex
        if author in self.blocked:
            raise self._refuse(Blocked("this author key is blocked by the operator"))
        n = len(envelopes)
        await self._take_update_tokens(author, address, n)
        lock = self._locks.setdefault(doc_id, trio.Lock())
        async with lock:
            try:
                return await self._accept_locked(doc_id, envelopes, source)
            finally:
                if not lock.statistics().tasks_waiting:
                    self._locks.pop(doc_id, None)

    async def _take_update_tokens(self, author: str, address: str, n: int) -> None:
        """*n* tokens from the author's and the address's buckets, or RateLimited.
        Both are checked before either is taken from: a refusal costs no tokens."""
        limits = self.limits
        if self.shared_limits is not None:
            try:
                short = await self.shared_limits.take([
                    ("author:" + author, limits.author_updates_per_minute, n),
                    ("address:" + address, limits.address_updates_per_minute, n)])
            except LimitsUnavailable as exc:
                raise self._refuse(Unavailable(
                    f"the server's database is unavailable ({exc}); try again shortly")
                ) from None
        elif self._by_author.available(author) < n:
            short = 0
        elif self._by_address.available(address) < n:
            short = 1
        else:
            self._by_author.take(author, n)
            self._by_address.take(address, n)
            short = None
        if short == 0:
            raise self._refuse(RateLimited(
                f"rate limit: {limits.author_updates_per_minute} updates per minute "
                "per author"))
        if short == 1:
            raise self._refuse(RateLimited(
                f"rate limit: {limits.address_updates_per_minute} updates per minute "
                "per address"))

    async def _accept_locked(self, doc_id: str, envelopes: list[Envelope],
                             source: Listener | None) -> int:
        meta = self.docs.get(doc_id)
        known = meta is not None or self.store.info(doc_id) is not None
        stored = await self._open(doc_id) if known else None
        scratch: Doc[Any] = Doc()
        if stored is not None:
            apply_update(scratch, stored.doc.get_update())
        for env in envelopes:
            apply_update(scratch, env.update)
        item = read_item(doc_id, scratch)  # InvalidItem: nothing is stored
        if item.thread in self.withdrawn:
            if stored is not None:  # held here (a build that kept such children)
                await self._delete_all([doc_id], utc_text(self.wall_clock()), WITH_THREAD)
            else:
                # Nothing of it is stored, nor a tombstone: remembered for a while,
                # so its author's node, which keeps it, is not asked at every sync.
                self._remember_refusal(doc_id)
            raise self._refuse(self._gone(doc_id))
        if stored is None:
            stored = await self._open(doc_id, create=True)
        before = stored.doc.get_state()
        try:
            self.store.apply_enveloped(
                stored, [e.update for e in envelopes], [e.raw for e in envelopes],
                origin=ACCEPT_ORIGIN)
        except ValueError:  # checked on the scratch copy; not expected
            raise MalformedEnvelope(f"update for {doc_id} cannot be applied") from None
        sv = stored.doc.get_state()
        await self.store.wait_durable()
        if doc_id in self.withdrawn or item.thread in self.withdrawn:
            # It, or its thread, was withdrawn while we were writing: undo.
            await self._delete_all([doc_id], utc_text(self.wall_clock()), WITH_THREAD)
            raise self._gone(doc_id)
        changed = not same_state(sv, before)  # yrs orders clients as its hash map grew
        seq = meta.received_seq if meta else self.index.last_seq + 1
        hidden = self._withheld(item)
        self.index.put(DocMeta(item, hidden, sv, seq))
        self.stats.accepted_updates += len(envelopes)
        self.stats.documents = len(self.index)
        if changed and not hidden:
            bundle = encode_bundle(e.raw for e in envelopes)
            for listener in list(self._listeners):
                if listener is not source:
                    listener.deliver(doc_id, bundle)
        if changed:
            await self._announce([doc_id])
        return len(envelopes) if changed else 0

    async def _open(self, doc_id: str, *, create: bool = False) -> StoredDoc:
        """Load *doc_id*, keeping at most ``DOC_CACHE_ENTRIES`` documents in memory."""
        stored = self.store.loaded(doc_id) or await self.store.open_doc(
            doc_id, kind=DOC_KIND, sync_class=SyncClass.COMMONS, create=create)
        self._recent[doc_id] = None
        self._recent.move_to_end(doc_id)
        busy = []
        while len(self._recent) > L.DOC_CACHE_ENTRIES:
            old, _ = self._recent.popitem(last=False)
            if old == doc_id or old in self._locks:  # never unload one under an accept
                busy.append(old)
                if len(busy) >= len(self._recent):
                    break
            else:
                self.store.unload(old)
        for old in busy:  # back, as the most recent: they are in use
            self._recent[old] = None
        return stored

    # ------------------------------------------------------------------ deleting

    async def withdraw(self, doc_id: str, signature: bytes) -> bool:
        """The owner's signed request: delete every byte of *doc_id* and refuse it from
        now on. False (and nothing kept) if this server never held it: then there is
        nothing to delete, and no upload can bring it here either (an envelope is
        valid only for the server it was signed for: spec/commons.md)."""
        verify_withdrawal(doc_id, signature)  # ForgedUpdate if not the owner's
        if self.instances is not None:  # it may have come in through another instance
            await self.store.refresh()
        if not self.holds(doc_id):
            return False
        await self._delete(doc_id, "owner")
        return True

    def holds(self, doc_id: str) -> bool:
        """This server has, had, or is taking *doc_id* (so a withdrawal must be kept)."""
        return (doc_id in self.withdrawn or doc_id in self.docs or doc_id in self._locks
                or self.store.info(doc_id) is not None)

    def _remember_refusal(self, doc_id: str) -> None:
        self._refused_children[doc_id] = None
        self._refused_children.move_to_end(doc_id)
        while len(self._refused_children) > L.MAX_REMEMBERED_REFUSALS:
            self._refused_children.popitem(last=False)

    async def _delete(self, doc_id: str, by: str) -> None:
        """Withdraw *doc_id* and, if it is a thread, every comment and reaction on it."""
        at = utc_text(self.wall_clock())
        self.moderation.withdraw(doc_id, at, by)  # the one readers see listed
        await self._delete_all([doc_id, *self.index.children(doc_id)], at, WITH_THREAD)
        self.stats.withdrawn += 1

    async def _delete_all(self, doc_ids: list[str], at: str, by: str) -> None:
        """Tombstone *doc_ids* (an id already withdrawn keeps its tombstone), then delete
        them and rewrite the file once, so none of their bytes remain."""
        # The tombstones first: a crash before the deletion is finished at the next load.
        with self.moderation.change():
            for doc_id in doc_ids:
                self.moderation.withdraw(doc_id, at, by)
        present = []
        for doc_id in doc_ids:
            self.index.remove(doc_id)
            self._recent.pop(doc_id, None)
            if self.store.info(doc_id) is not None:
                present.append(doc_id)
        for i, doc_id in enumerate(present):
            with suppress(DocumentError):  # deleted meanwhile by another instance
                await self.store.delete_doc(doc_id, scrub_file=i == len(present) - 1)
        if not present:
            await self.store.wait_durable()
        self.stats.documents = len(self.index)
        await self._announce(doc_ids, moderation=True)

    def _gone(self, doc_id: str) -> Gone:
        if (doc_id in self._refused_children
                or self.moderation.withdrawn_by(doc_id) == WITH_THREAD):
            kind = parse_doc_id(doc_id).kind
            return Gone(f"the thread this {kind} belongs to was withdrawn or removed: "
                        "it takes no comments or reactions")
        return Gone(f"{doc_id} was withdrawn or removed")

    # ------------------------------------------------------------------ other instances

    async def _announce(self, doc_ids: Sequence[str], *, moderation: bool = False) -> None:
        """Tell the other instances what this one just committed (after COMMIT)."""
        if self.instances is None:
            return
        try:
            await self.instances.announce(list(doc_ids), moderation=moderation)
        except BusError as exc:  # kept all the same; the others see it at their resync
            log.warning("could not tell the other instances of %d change(s): %s",
                        len(doc_ids), exc)

    async def follow(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                     ) -> None:
        """Apply what the other instances of this database commit, until cancelled:
        index it, and push it to this instance's live sessions. Returns at once when
        this instance is alone. Start it with ``nursery.start`` before serving."""
        if self.instances is None:
            task_status.started()
            return
        pending: set[str] = set()
        flags = {"moderation": False, "resync": False}
        wake = trio.Event()

        def note(doc_ids: Iterable[str], moderation: bool = False) -> None:
            nonlocal wake
            pending.update(doc_ids)
            flags["moderation"] |= moderation
            if len(pending) > L.MAX_PENDING_NOTICES:
                flags["resync"] = True
                pending.clear()
            wake.set()

        def on_notice(notice: Notice | None) -> None:
            if notice is None:
                flags["resync"] = True
                note(())
            else:
                note(notice.doc_ids, notice.moderation)

        # Whoever refreshes the store (this loop, an open, a withdrawal), what another
        # instance wrote is noted here: the net under a lost notice (see sweep).
        def on_external(stored: StoredDoc, update: bytes, source: str) -> None:
            if source == "external":
                is_moderation = stored.doc_id == MODERATION_DOC_ID
                note(() if is_moderation else (stored.doc_id,), is_moderation)

        def on_new(infos: tuple[DocInfo, ...]) -> None:
            note(i.doc_id for i in infos if i.kind == DOC_KIND)

        self.store.add_listener(on_external)
        self.store.add_catalogue_listener(on_new)
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(functools.partial(self.instances.run, on_notice))
                nursery.start_soon(self._sweep, note)
                task_status.started()
                while True:
                    await wake.wait()
                    wake = trio.Event()
                    doc_ids = set(pending)
                    pending.clear()
                    moderation, resync = flags["moderation"], flags["resync"]
                    flags.update(moderation=False, resync=False)
                    await self.apply_other_instances(doc_ids, moderation=moderation,
                                                     resync=resync)
        finally:
            self.store.remove_listener(on_external)
            self.store.remove_catalogue_listener(on_new)

    async def _sweep(self, note: Callable[[Iterable[str]], None]) -> None:
        """Now and then, look at the store itself: an instance that died between its
        COMMIT and its announcement left news nobody was told of. A refresh makes the
        store report what others wrote (new documents, changes to loaded ones, the
        moderation state); documents gone from it are noted here."""
        while True:
            await trio.sleep(L.FOLLOW_SWEEP_S)
            await self.store.refresh()
            note(d for d in self.docs if self.store.info(d) is None)

    async def apply_other_instances(self, doc_ids: set[str], *, moderation: bool = False,
                                    resync: bool = False) -> None:
        """Bring this instance's index up to what the store holds for *doc_ids* (all
        documents with *resync*) and, with *moderation*, for the moderation state."""
        await self.store.refresh()
        if resync:
            moderation = True
            doc_ids = set(self.docs) | {i.doc_id for i in self.store.documents(kind=DOC_KIND)}
        if moderation:
            self.moderation.reload()
            doc_ids |= await self._follow_moderation()
        for doc_id in sorted(doc_ids):
            await self._follow_doc(doc_id)
        self.stats.followed_changes += len(doc_ids)

    async def _follow_moderation(self) -> set[str]:
        """Withhold what the moderation state now withholds; the documents it
        withdrew (with their threads' children) that are still indexed."""
        moderation = self.moderation
        gone = {d for d, m in self.docs.items()
                if d in moderation.withdrawn or (m.thread and m.thread in moderation.withdrawn)}
        for doc_id, meta in list(self.docs.items()):
            self.index.set_hidden(doc_id, self._withheld(meta.item))
        return gone

    async def _follow_doc(self, doc_id: str) -> None:
        if not is_commons_id(doc_id):
            return
        lock = self._locks.setdefault(doc_id, trio.Lock())
        async with lock:  # never in the middle of this instance's own accept of it
            try:
                await self._follow_doc_locked(doc_id)
            finally:
                if not lock.statistics().tasks_waiting:
                    self._locks.pop(doc_id, None)

    async def _follow_doc_locked(self, doc_id: str) -> None:
        if self.store.info(doc_id) is None or doc_id in self.withdrawn:
            if self.store.info(doc_id) is not None:  # its tombstone came first: finish
                await self._delete_all([doc_id], utc_text(self.wall_clock()), WITH_THREAD)
            self.index.remove(doc_id)
            self._recent.pop(doc_id, None)
            self.stats.documents = len(self.index)
            return
        meta = self.docs.get(doc_id)
        stored = await self._open(doc_id)
        try:
            item = read_item(doc_id, stored.doc)
        except CommonsError as exc:
            log.warning("not serving %s: %s", doc_id, exc)
            return
        if item.thread in self.withdrawn:  # accepted elsewhere as its thread went
            await self._delete_all([doc_id], utc_text(self.wall_clock()), WITH_THREAD)
            return
        sv = stored.doc.get_state()
        hidden = self._withheld(item)
        seq = meta.received_seq if meta else self.index.last_seq + 1
        self.index.put(DocMeta(item, hidden, sv, seq))
        self.stats.documents = len(self.index)
        if not hidden and (meta is None or meta.state_vector != sv):
            bundle = encode_bundle(await self.store.envelopes(doc_id))
            for listener in list(self._listeners):
                listener.deliver(doc_id, bundle)

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
        if self.instances is not None:  # what the others applied, replays included
            await self.store.refresh()
            self.moderation.reload()
        moderation = self.moderation
        if sig_hex in moderation.signatures:
            raise Refused("this action was already applied (replayed signature)")
        with moderation.change():
            moderation.append_log({"at": at, "action": action, "target": target,
                                   "reason": reason, "operator": operator.hex(),
                                   "signature": sig_hex})
            if action in ("hide", "unhide"):
                moderation.set_hidden(target, action == "hide", at)
            elif action in ("block", "unblock"):
                moderation.set_blocked(target, action == "block", at)
        if action in ("hide", "unhide"):
            self._rewithhold([target])
        elif action in ("block", "unblock"):
            self._rewithhold(self.index.ids_by(target))
        if action == "remove":
            await self._delete(target, "operator")
        else:
            await self.store.wait_durable()
            await self._announce([], moderation=True)
        return {"action": action, "target": target, "reason": reason, "at": at}

    def _withheld(self, item: Item) -> bool:
        """Hidden by the operator, or its author is blocked, or the same holds for its
        thread (a comment or reaction goes where its thread goes): kept, but shown nowhere."""
        moderation = self.moderation
        for doc_id in (item.doc_id, item.thread):
            if doc_id and (doc_id in moderation.hidden
                           or parse_doc_id(doc_id).owner_hex in moderation.blocked):
                return True
        return False

    def _rewithhold(self, doc_ids: list[str]) -> None:
        """Recompute whether *doc_ids*, and the comments and reactions of those that are
        threads, are withheld."""
        for doc_id in doc_ids:
            for one in (doc_id, *self.index.children(doc_id)):
                meta = self.docs.get(one)
                if meta is not None:
                    self.index.set_hidden(one, self._withheld(meta.item))

    # ------------------------------------------------------------------ reading (web, API)

    async def threads(self, page: int) -> list[dict[str, Any]]:
        return self.index.threads((page - 1) * L.THREADS_PER_PAGE, L.THREADS_PER_PAGE)

    async def thread(self, doc_id: str) -> dict[str, Any] | None:
        """A post or insight with its visible comments and reaction counts."""
        return self.index.thread(doc_id, L.MAX_COMMENTS_PER_PAGE)

    def moderated_lists(self) -> dict[str, list[str]]:
        """What readers drop from their caches at each sync (ids only, never content),
        newest first, each list at most ``MAX_LISTED_IDS``: ``withdrawn`` (by the
        owner, or removed by the operator: gone for good), ``hidden`` (document ids
        the operator hides now) and ``blocked`` (author keys blocked now, whose every
        document is withheld). Un-hidden and unblocked ones leave the lists, and
        readers fetch them again with the catalogue. Comments and reactions go where
        their thread goes, but only the thread is listed: readers drop the children of
        a listed thread (or of a blocked author's thread) themselves, so a thread with
        thousands of comments takes one entry."""
        moderation = self.moderation
        return {"withdrawn": moderation.recently_withdrawn(L.MAX_LISTED_IDS),
                "hidden": moderation.recently_hidden(L.MAX_LISTED_IDS),
                "blocked": moderation.recently_blocked(L.MAX_LISTED_IDS)}

    def moderation_of(self, doc_ids: list[str]) -> dict[str, list[str]]:
        """What a reader must drop of the documents it holds (*doc_ids*), whatever
        happened to any other: ``withdrawn`` (gone for good: by the owner, the
        operator, or with its thread), ``hidden`` (withheld now: hidden, or its
        thread is, or an author is blocked) and ``blocked`` (owners of *doc_ids*
        blocked now). Ids that are not Commons ids, or that this server never
        held, are in none of them."""
        withdrawn, hidden, blocked = [], [], []
        moderation = self.moderation
        for doc_id in dict.fromkeys(doc_ids):
            if not is_commons_id(doc_id):
                continue
            if doc_id in moderation.withdrawn or doc_id in self._refused_children:
                withdrawn.append(doc_id)
            elif (meta := self.docs.get(doc_id)) is not None and meta.hidden:
                hidden.append(doc_id)
            owner = parse_doc_id(doc_id).owner_hex
            if owner in moderation.blocked and owner not in blocked:
                blocked.append(owner)
        return {"withdrawn": withdrawn, "hidden": hidden, "blocked": blocked}

    async def moderation_log(self) -> list[dict[str, Any]]:
        return self.moderation.log(L.MODERATION_LOG_PAGE)

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
