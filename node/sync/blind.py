"""Syncing through a blind store: push this device's ``devices`` documents as
sealed envelopes, pull what the store has that this device lacks, compact.

Theory of operation
-------------------
* One :class:`BlindSync` per configured store URL. It works on the log of the
  group's *current* epoch: the token and the group id derive from that epoch's
  secret (``protocol.keys.store_token``), so the store links nothing across
  epochs.
* **What leaves**: only documents :func:`~node.sync.catalogue.offerable` lists
  for the ``devices`` class — the one choke point — sealed with
  ``protocol.store.seal_envelope``. For each document the sync keeps the state
  vector of what the store is known to hold (``store_sv``: everything pulled
  from it or pushed to it). A document whose state vector is not covered by it,
  or which changed here (a delta always carries the whole delete set), is
  pushed as ``doc.get_update(store_sv)``.
* **What enters**: envelopes after the persisted cursor. Each must carry a
  signature by a current device of the group and open under this epoch's keys;
  anything else is counted as rejected and changes nothing. Envelopes signed by
  a key not yet known are retried once the membership document of the same
  batch is applied. Pulled updates are applied under this sync's own origin,
  so they are not pushed back; the cursor is saved only after they are on disk.
* **Compaction**: once the log holds ``compact_after`` envelopes beyond its
  snapshot and this device has pulled all of them, it uploads every shared
  document in full as snapshot parts covering that cursor; the store drops the
  envelopes they cover. A device that refused some pulled document (kept
  ``local`` here) never compacts: its snapshot would lose it; nor does one that
  rejected an envelope of the log (its snapshot would paper over the attack).
* **A new epoch** (a device was removed): the first device to notice pulls the
  old log to its end, then retires it — the store refuses the old token from
  then on — leaving a forwarding notice: the membership document sealed under
  the old epoch, from which a device that missed the removal learns the new
  epoch's secret (sealed to it). Every remaining device then pushes its whole
  state into the new epoch's log. A removed device finds only the notice, which
  tells it that it was removed.
* While running it long-polls the store for news and pushes as soon as the
  local documents change.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx
import trio

from crdt import DocStore, StoredDoc, SyncClass, UpdateSource
from crdt.devices import DOC_ID as MEMBERSHIP_DOC_ID
from crdt.update_check import UpdateRejected, check_map_roots
from protocol import RemoteProtocolError
from protocol.keys import store_group_id, store_token
from protocol.store import (
    KIND_SNAPSHOT,
    KIND_UPDATE,
    NONCE_BYTES,
    decode_pull,
    open_envelope,
    seal_envelope,
)

from .backoff import Backoff
from .blind_client import (
    BlindStoreClient,
    BlindStoreError,
    LogState,
    PullAnswer,
    RemovedFromGroup,
    StoreRefused,
    StoreRetired,
    StoreUnavailable,
    covered,
    decode_sv,
    encode_sv,
    load_states,
    merge_sv,
    normalize_store_url,
    open_http_client,
    save_state,
    usable_stores,
)
from .catalogue import acceptable, kind_for, offerable
from .group import Group
from .limits import (
    BLIND_STORE_BACKOFF_MAX_S,
    BLIND_STORE_BACKOFF_MIN_S,
    COMPACT_AFTER_ENVELOPES,
    MAX_UPLOAD_BYTES,
    PULL_WAIT_S,
    SCAN_INTERVAL_S,
)

__all__ = [
    "BlindStoreClient",
    "BlindStoreError",
    "BlindSync",
    "BlindSyncReport",
    "LogState",
    "RemovedFromGroup",
    "StoreRefused",
    "StoreRetired",
    "StoreUnavailable",
    "load_states",
    "normalize_store_url",
    "open_http_client",
    "run_blind_stores",
    "save_state",
    "usable_stores",
]

log = logging.getLogger("mirror.blind")


# --------------------------------------------------------------------------- the sync


class _StoreRemoved(BlindStoreError):
    """The person removed this store (``mirror store remove``) while it ran."""

    def __init__(self) -> None:
        super().__init__("this store was removed from the list meanwhile")


@dataclass
class BlindSyncReport:
    """What one round with a blind store did: pulled, applied, rejected, pushed, compacted."""

    pulled: int = 0
    applied: int = 0
    rejected: int = 0
    pushed: int = 0
    compacted: bool = False


class BlindSync:
    """Keeps this device's ``devices`` documents in sync with one blind store."""

    def __init__(
        self,
        store: DocStore,
        group: Group,
        url: str,
        home: Path,
        http: httpx.AsyncClient,
        *,
        compact_after: int = COMPACT_AFTER_ENVELOPES,
        rng: Callable[[int], bytes] = os.urandom,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.group = group
        self.url = url
        self.home = home
        self.http = http
        self.compact_after = compact_after
        self._rng = rng
        self._wall = wall_clock
        self.origin = f"mirror.blind:{os.urandom(4).hex()}"
        self._origin_source = UpdateSource.of(self.origin)
        self._dirty: set[str] = set()
        self._wake = trio.Event()
        self._refused_docs: set[str] = set()
        self._own_seqs: list[tuple[int, int]] = []
        self.state = self._initial_state()
        self.changed = trio.Event()
        self._tainted = False  # rejected something in this log: never compact over it
        self._head = 0  # the log's last sequence number, as of the last pull
        self._covers = 0  # what its snapshot covers

    # ------------------------------------------------------------------ keys

    @property
    def epoch(self) -> int:
        return self.state.epoch

    def _secret(self, epoch: int) -> bytes:
        return self.group.keyring.epochs[epoch]

    def _client(self, epoch: int) -> BlindStoreClient:
        return BlindStoreClient(self.http, self.url, store_token(self._secret(epoch), epoch))

    def _group_id(self, epoch: int) -> bytes:
        return store_group_id(store_token(self._secret(epoch), epoch))

    def _initial_state(self) -> LogState:
        saved = load_states(self.home).get(self.url)
        if saved is not None and saved.epoch in self.group.keyring.epochs:
            return saved
        return LogState(self.group.keyring.epoch)

    def _save(self) -> None:
        if not save_state(self.home, self.url, self.state, add=False):
            raise _StoreRemoved()
        self.changed.set()
        self.changed = trio.Event()

    # ------------------------------------------------------------------ listener

    def _on_update(self, stored: StoredDoc, update: bytes, source: UpdateSource) -> None:
        # Inside pycrdt's commit: note the change, never touch the document.
        if source == self._origin_source or stored.sync_class is not SyncClass.DEVICES:
            return
        self._dirty.add(stored.doc_id)
        self._wake.set()

    # ------------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync until cancelled, reconnecting with backoff; stops if this device was removed."""
        self.store.add_listener(self._on_update)
        task_status.started()
        backoff = Backoff(BLIND_STORE_BACKOFF_MIN_S, BLIND_STORE_BACKOFF_MAX_S)
        try:
            while True:
                try:
                    await self.sync_once()
                    backoff.reset()
                    await self._live()
                except RemovedFromGroup as exc:
                    self._set_status(str(exc))
                    log.warning("blind store %s: %s", self.url, exc)
                    return
                except _StoreRemoved:
                    log.info("blind store %s was removed from this device's list", self.url)
                    return
                except BlindStoreError as exc:
                    self._set_status(str(exc))
                    log.info("blind store %s: %s", self.url, exc)
                    await backoff.wait()
        finally:
            self.store.remove_listener(self._on_update)

    async def _live(self) -> None:
        """Pull by long poll and push on change until the epoch moves or one fails."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pull_forever, nursery.cancel_scope)
                nursery.start_soon(self._push_forever, nursery.cancel_scope)
        except BaseExceptionGroup as group:
            # One task failed and the other was cancelled: report the store's error
            # as such (the caller retries), anything else as it is.
            leaves = list(_leaves(group))
            if leaves and all(isinstance(e, BlindStoreError) for e in leaves):
                raise leaves[0] from None
            raise

    async def _pull_forever(self, scope: trio.CancelScope) -> None:
        while not self._epoch_moved():
            await self.pull(wait_s=PULL_WAIT_S)
            await self._maybe_compact()
        scope.cancel()  # back to sync_once, which moves to the new epoch

    async def _push_forever(self, scope: trio.CancelScope) -> None:
        while not self._epoch_moved():
            self._wake = trio.Event()
            await self.push()
            with trio.move_on_after(SCAN_INTERVAL_S):
                await self._wake.wait()
        scope.cancel()

    def _epoch_moved(self) -> bool:
        return self.group.keyring.epoch > self.state.epoch

    def _set_status(self, status: str) -> None:
        self.state.status = status
        self._save()

    # ------------------------------------------------------------------ one round

    async def sync_once(self, *, compact: bool = False) -> BlindSyncReport:
        """Catch up both ways now: move to the newest epoch, pull all, push all."""
        report = BlindSyncReport()
        while True:
            if self._epoch_moved():
                await self._move_to_new_epoch()
            try:
                while True:
                    answer = await self.pull(report=report)
                    if not answer.more:
                        break
            except StoreRetired as exc:
                await self._follow_forward(exc.forward)
                continue
            if self._epoch_moved():
                continue
            report.pushed += await self.push()
            report.compacted = await self._maybe_compact(force=compact)
            self.state.last_sync = self._wall()
            self.state.status = "in sync"
            self._save()
            return report

    # ------------------------------------------------------------------ pull

    async def pull(self, *, wait_s: float = 0, report: BlindSyncReport | None = None) -> PullAnswer:
        report = report or BlindSyncReport()
        epoch = self.state.epoch
        client = self._client(epoch)
        try:
            answer = await client.pull(self.state.cursor, wait_s)
        except StoreRefused as exc:
            if exc.status != 409:
                raise
            log.warning("blind store %s lost entries this device had pulled: starting over",
                        self.url)
            self.state.cursor, self.state.store_sv = 0, {}
            answer = await client.pull(0)
        if self.state.epoch != epoch:
            return answer
        await self._apply_records(answer.records, epoch, report)
        self.state.cursor = answer.cursor
        self._head, self._covers = answer.head, answer.covers
        if answer.records:
            self.state.last_sync = self._wall()
            self._save()
        return answer

    async def _apply_records(
        self, records: Iterable[tuple[int, bytes]], epoch: int, report: BlindSyncReport
    ) -> None:
        group_id = self._group_id(epoch)
        secret = self._secret(epoch)
        deferred: list[bytes] = []
        for seq, envelope in records:
            report.pulled += 1
            if any(a <= seq <= b for a, b in self._own_seqs):
                continue  # what this device pushed itself
            if not await self._apply_one(envelope, secret, epoch, group_id, report, deferred):
                deferred.append(envelope)
        if deferred:
            self.group.refresh()
            for envelope in deferred:
                await self._apply_one(envelope, secret, epoch, group_id, report, None)
        await self.store.wait_durable()

    async def _apply_one(
        self, envelope: bytes, secret: bytes, epoch: int, group_id: bytes,
        report: BlindSyncReport, deferred: list[bytes] | None,
    ) -> bool:
        """Verify, decrypt and apply; False if the signer is not known yet (retry later)."""
        known = self.group.known
        if deferred is not None and envelope[3:35] not in known:
            return False
        try:
            opened = open_envelope(envelope, group_secret=secret, epoch=epoch, group_id=group_id,
                                   is_member=lambda key: key in known)
        except RemoteProtocolError as exc:
            self._reject(report, f"an envelope was rejected: {exc}")
            return True
        doc_id = opened.doc_id
        if not acceptable(doc_id, SyncClass.DEVICES.value, self.store, [SyncClass.DEVICES]):
            log.info("blind store: %s is not shared on this device; not merged", doc_id)
            self._refused_docs.add(doc_id)
            return True
        stored = self.store.loaded(doc_id)
        if stored is None:
            stored = await self.store.open_doc(doc_id, kind=kind_for(doc_id),
                                               sync_class=SyncClass.DEVICES)
        try:
            state = decode_sv(opened.state_vector)
            self.store.ensure_writable()
            check_map_roots(opened.payload)  # pycrdt trap 11
            with stored.doc.transaction(origin=self.origin):
                stored.doc.apply_update(opened.payload)
        except ValueError:
            self._reject(report, "an envelope held an undecodable update")
            return True
        merge_sv(self.state.store_sv.setdefault(doc_id, {}), state)
        report.applied += 1
        if doc_id == MEMBERSHIP_DOC_ID:
            self.group.refresh()
        return True

    def _reject(self, report: BlindSyncReport, message: str) -> None:
        self._tainted = True
        report.rejected += 1
        self.state.rejected += 1
        log.warning("blind store %s: %s", self.url, message)

    # ------------------------------------------------------------------ push

    async def push(self) -> int:
        """Send what the store lacks; returns the number of envelopes sent."""
        epoch = self.state.epoch
        dirty, self._dirty = self._dirty, set()
        envelopes: list[tuple[str, dict[int, int], bytes]] = []
        for info in offerable(self.store, [SyncClass.DEVICES]):
            stored = self.store.loaded(info.doc_id) or await self.store.open_doc(
                info.doc_id, kind=info.kind, create=False)
            local = decode_sv(stored.doc.get_state())
            have = self.state.store_sv.get(info.doc_id, {})
            if covered(have, local) and info.doc_id not in dirty:
                continue
            delta = stored.doc.get_update(encode_sv(have))
            envelopes.append((info.doc_id, local,
                              self._seal(KIND_UPDATE, info.doc_id, delta, local, epoch)))
        if not envelopes:
            return 0
        client = self._client(epoch)
        try:
            for batch in _batches(envelopes):
                first, last = await client.append([e for _, _, e in batch])
                self._own_seqs.append((first, last))
                if first == self.state.cursor + 1:  # nothing in between: no need to pull it
                    self.state.cursor = last
                    self._head = max(self._head, last)
                for doc_id, local, _ in batch:
                    merge_sv(self.state.store_sv.setdefault(doc_id, {}), local)
        except BlindStoreError:
            self._dirty |= dirty  # not sent: try again
            raise
        self._save()
        return len(envelopes)

    def _seal(self, kind: int, doc_id: str, payload: bytes, sv: dict[int, int],
              epoch: int) -> bytes:
        return seal_envelope(
            kind=kind, doc_id=doc_id, payload=payload, state_vector=encode_sv(sv),
            group_secret=self._secret(epoch),
            epoch=epoch, group_id=self._group_id(epoch),
            device_seed=self.group.keyring.device_seed, nonce=self._rng(NONCE_BYTES),
        )

    # ------------------------------------------------------------------ compaction

    async def _maybe_compact(self, *, force: bool = False) -> bool:
        beyond = self._head - self._covers
        if not force and beyond < self.compact_after:
            return False
        return await self.compact()

    async def compact(self) -> bool:
        """Upload a snapshot covering everything pulled so far; False if not safe now."""
        if self._tainted:
            log.warning("blind store %s: not compacting: this log holds envelopes this device "
                        "rejected (tampered or foreign); a snapshot would hide that", self.url)
            return False
        if self._refused_docs:
            log.info("blind store %s: not compacting (this device keeps %s local)",
                     self.url, ", ".join(sorted(self._refused_docs)))
            return False
        if self.state.cursor < self._head:
            return False  # not caught up: the snapshot would miss what is after the cursor
        if self.state.cursor == self._covers:
            return False  # nothing beyond the current snapshot
        epoch = self.state.epoch
        parts: list[bytes] = []
        for info in offerable(self.store, [SyncClass.DEVICES]):
            stored = self.store.loaded(info.doc_id) or await self.store.open_doc(
                info.doc_id, kind=info.kind, create=False)
            doc = stored.doc
            parts.append(self._seal(KIND_SNAPSHOT, info.doc_id, doc.get_update(),
                                    decode_sv(doc.get_state()), epoch))
        try:
            dropped = await self._client(epoch).put_snapshot(self.state.cursor, parts)
        except StoreRefused as exc:
            if exc.status == 409:
                return False  # another device compacted further meanwhile
            raise
        self._covers = self.state.cursor
        log.info("blind store %s: compacted (%d parts; %d envelopes dropped)",
                 self.url, len(parts), dropped)
        return True

    # ------------------------------------------------------------------ epochs

    async def _move_to_new_epoch(self) -> None:
        old, new = self.state.epoch, self.group.keyring.epoch
        client = self._client(old)
        try:
            while True:  # take what the old log still has before it goes
                answer = await self.pull()
                if not answer.more:
                    break
            doc = self.group.stored.doc
            forward = [self._seal(KIND_SNAPSHOT, MEMBERSHIP_DOC_ID, doc.get_update(),
                                  decode_sv(doc.get_state()), old)]
            await client.retire(forward)
            log.info("blind store %s: retired the log of epoch %d", self.url, old)
        except StoreRetired:
            pass
        self.state = LogState(new)
        self._own_seqs, self._refused_docs, self._tainted = [], set(), False
        self._head = self._covers = 0
        self._save()

    async def _follow_forward(self, forward: bytes) -> None:
        """The log of our epoch is retired: learn the new epoch from its notice."""
        epoch = self.state.epoch
        try:
            records = decode_pull(forward)
        except RemoteProtocolError:
            records = []
        report = BlindSyncReport()
        for _, envelope in records:
            try:
                opened = open_envelope(
                    envelope, group_secret=self._secret(epoch), epoch=epoch,
                    group_id=self._group_id(epoch), is_member=lambda key: key in self.group.known)
            except RemoteProtocolError as exc:
                self._reject(report, f"a forwarding notice was rejected: {exc}")
                continue
            if opened.kind != KIND_SNAPSHOT or opened.doc_id != MEMBERSHIP_DOC_ID:
                continue
            try:
                check_map_roots(opened.payload)
            except UpdateRejected as exc:
                self._reject(report, f"a forwarding notice was rejected: {exc}")
                continue
            with self.group.stored.doc.transaction(origin=self.origin):
                self.group.stored.doc.apply_update(opened.payload)
            self.group.refresh()
        await self.store.wait_durable()
        if not self._epoch_moved():
            raise RemovedFromGroup(
                "the blind store refuses this device: its group moved to a newer epoch "
                "without it (was it removed?)")


def _leaves(group: BaseExceptionGroup[BaseException]) -> Iterable[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


Outgoing = tuple[str, dict[int, int], bytes]


def _batches(items: list[Outgoing]) -> Iterable[list[Outgoing]]:
    batch: list[Outgoing] = []
    size = 0
    for item in items:
        if batch and size + len(item[2]) > MAX_UPLOAD_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += len(item[2])
    if batch:
        yield batch


async def run_blind_stores(
    store: DocStore, group: Group, home: Path, urls: Iterable[str],
    *, task_status: trio.TaskStatus[list[BlindSync]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Keep every store in *urls* in sync until cancelled (``mirror serve``, the REPL)."""
    async with open_http_client() as http, trio.open_nursery() as nursery:
        syncs = [BlindSync(store, group, url, home, http) for url in urls]
        for sync in syncs:
            await nursery.start(sync.run)
        task_status.started(syncs)
