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

import ipaddress
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

from crdt import DocStore, StoredDoc, SyncClass
from crdt.devices import DOC_ID as MEMBERSHIP_DOC_ID
from protocol import RemoteProtocolError
from protocol.keys import store_group_id, store_token
from protocol.store import (
    KIND_SNAPSHOT,
    KIND_UPDATE,
    NONCE_BYTES,
    decode_pull,
    encode_upload,
    open_envelope,
    seal_envelope,
)

from ..config import is_loopback_or_lan
from ..errors import MirrorError
from .catalogue import acceptable, kind_for, offerable
from .group import Group

log = logging.getLogger("mirror.blind")

STATE_FILE = "blind-stores.json"
STATE_VERSION = 1
COMPACT_AFTER_ENVELOPES = 256
"""Envelopes beyond the snapshot after which a caught-up device compacts."""
PULL_WAIT_S = 25.0
"""How long one pull may be held open by the store waiting for news."""
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 60.0
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 60.0
SCAN_INTERVAL_S = 1.0
"""How often the pusher re-checks documents other processes may have created."""
MAX_UPLOAD_BYTES = 8 * 1024 * 1024
"""Envelopes are sent in requests of about this size."""


# --------------------------------------------------------------------------- errors


class BlindStoreError(MirrorError):
    """Talking to a blind store failed (one line for the person)."""


class StoreUnavailable(BlindStoreError):
    """The store could not be reached or answered 5xx; try again later."""


class StoreRefused(BlindStoreError):
    """The store refused the request (quota, conflict, bad token...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the blind store refused ({status}): {message}")
        self.status = status


class StoreRetired(BlindStoreError):
    """This epoch's log was retired; the forwarding notice comes along."""

    def __init__(self, forward: bytes) -> None:
        super().__init__("the blind store retired this log: the group moved to a newer epoch")
        self.forward = forward


class RemovedFromGroup(BlindStoreError):
    """The store refuses this device: its group moved on without it."""


# --------------------------------------------------------------------------- HTTP client


@dataclass(frozen=True)
class PullAnswer:
    records: list[tuple[int, bytes]]
    cursor: int
    head: int
    covers: int
    more: bool


class BlindStoreClient:
    """The store's HTTP interface for one log (one token); errors translated."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: bytes) -> None:
        self._http = http
        self._base = url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token.hex()}"}

    async def _request(self, method: str, path: str, *, content: bytes | None = None,
                       params: dict[str, int] | None = None,
                       read_s: float = REQUEST_TIMEOUT_S) -> httpx.Response:
        try:
            response = await self._http.request(
                method, self._base + path, content=content, params=params,
                headers=self._headers,
                timeout=httpx.Timeout(read_s, connect=CONNECT_TIMEOUT_S),
            )
        except httpx.HTTPError as exc:
            raise StoreUnavailable(f"cannot reach the blind store {self._base} "
                                   f"({type(exc).__name__})") from None
        if response.status_code == 410:
            raise StoreRetired(response.content if method == "GET" else b"")
        if response.status_code >= 500 and response.status_code != 507:
            raise StoreUnavailable(f"the blind store {self._base} answered "
                                   f"{response.status_code}")
        if response.status_code >= 400:
            raise StoreRefused(response.status_code, _error_text(response))
        return response

    async def append(self, envelopes: list[bytes]) -> tuple[int, int]:
        r = await self._request("POST", "/v1/log", content=encode_upload(envelopes))
        data = _json(r)
        return int(data["first_seq"]), int(data["last_seq"])

    async def pull(self, after: int, wait_s: float = 0) -> PullAnswer:
        params = {"after": after}
        if wait_s > 0:
            params["wait"] = int(wait_s)
        r = await self._request("GET", "/v1/log", params=params,
                                read_s=REQUEST_TIMEOUT_S + wait_s)
        try:
            records = decode_pull(r.content)
            return PullAnswer(
                records, int(r.headers["mirror-cursor"]), int(r.headers["mirror-head"]),
                int(r.headers["mirror-covers"]), r.headers["mirror-more"] == "1",
            )
        except (RemoteProtocolError, KeyError, ValueError) as exc:
            raise StoreUnavailable(f"the blind store sent a malformed answer ({exc})") from None

    async def put_snapshot(self, covers: int, parts: list[bytes]) -> int:
        r = await self._request("PUT", "/v1/snapshot", params={"covers": covers},
                                content=encode_upload(parts))
        return int(_json(r).get("dropped", 0))

    async def retire(self, forward: list[bytes]) -> None:
        try:
            await self._request("DELETE", "/v1/log", content=encode_upload(forward))
        except StoreRetired:
            pass  # another device was first

    async def usage(self) -> dict[str, Any]:
        return _json(await self._request("GET", "/v1/usage"))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise StoreUnavailable("the blind store sent malformed JSON") from None
    if not isinstance(data, dict):
        raise StoreUnavailable("the blind store sent malformed JSON")
    return data


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])[:200]
    except (ValueError, KeyError, TypeError):
        return response.reason_phrase or "error"


# --------------------------------------------------------------------------- state vectors


def decode_sv(data: bytes) -> dict[int, int]:
    """A lib0 state vector (``count, (client, clock)*`` varuints) as a dict."""
    out: dict[int, int] = {}
    values = _varints(data)
    count = values[0] if values else 0
    for i in range(count):
        out[values[1 + 2 * i]] = values[2 + 2 * i]
    return out


def encode_sv(sv: dict[int, int]) -> bytes:
    parts = [_varint(len(sv))]
    for client, clock in sorted(sv.items()):
        parts += [_varint(client), _varint(clock)]
    return b"".join(parts)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _varints(data: bytes) -> list[int]:
    out, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            out.append(value)
            value, shift = 0, 0
    return out


def covered(have: dict[int, int], want: dict[int, int]) -> bool:
    return all(have.get(client, 0) >= clock for client, clock in want.items())


def merge_sv(into: dict[int, int], other: dict[int, int]) -> None:
    for client, clock in other.items():
        if clock > into.get(client, 0):
            into[client] = clock


# --------------------------------------------------------------------------- state


@dataclass
class LogState:
    """What this device knows about one store's log; saved in the home."""

    epoch: int
    cursor: int = 0
    store_sv: dict[str, dict[int, int]] = field(default_factory=dict)
    last_sync: float | None = None
    rejected: int = 0
    status: str = "not synced yet"

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch, "cursor": self.cursor, "last_sync": self.last_sync,
            "rejected": self.rejected, "status": self.status,
            "store_sv": {d: encode_sv(sv).hex() for d, sv in sorted(self.store_sv.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> LogState:
        state = cls(int(data["epoch"]), int(data["cursor"]))
        state.store_sv = {str(d): decode_sv(bytes.fromhex(h))
                          for d, h in dict(data.get("store_sv", {})).items()}
        last = data.get("last_sync")
        state.last_sync = float(last) if isinstance(last, int | float) else None
        state.rejected = int(data.get("rejected", 0))
        state.status = str(data.get("status", ""))
        return state


def load_states(home: Path) -> dict[str, LogState]:
    """The configured stores (by URL) and what this device knows of each."""
    path = home / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BlindStoreError(f"{path}: cannot read ({exc}); fix or delete it") from None
    try:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unknown version {data.get('version')!r}")
        return {str(url): LogState.from_json(s) for url, s in data["stores"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BlindStoreError(f"{path}: damaged ({exc}); fix or delete it") from None


def normalize_store_url(text: str) -> str:
    """``https://host[:port][/prefix]``; plain http only to this machine (the token
    must not cross a network in the clear). UsageError-worthy ValueError otherwise."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"a blind store is an https:// URL (got {text!r})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a blind store is an https:// URL like https://store.example "
                         f"(got {text!r})")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"a blind store URL has no user, query or fragment (got {text!r})")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"use https:// for a store that is not on this machine (got {text!r}); "
                         "its token must not travel in the clear")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def usable_stores(mirror_mode: str, urls: Iterable[str]) -> list[str]:
    """The stores this node may reach in its mode (``local``: this machine and the LAN)."""
    return [u for u in urls if mirror_mode != "local" or is_loopback_or_lan(u)]


def save_state(home: Path, url: str, state: LogState | None) -> None:
    """Update one store's entry (None removes it); atomic."""
    states = load_states(home)
    if state is None:
        states.pop(url, None)
    else:
        states[url] = state
    data = {"version": STATE_VERSION, "stores": {u: s.to_json() for u, s in states.items()}}
    path = home / STATE_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------- the sync


@dataclass
class SyncReport:
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
        self._origin_source = str(hash(self.origin))
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
        save_state(self.home, self.url, self.state)
        self.changed.set()
        self.changed = trio.Event()

    # ------------------------------------------------------------------ listener

    def _on_update(self, stored: StoredDoc, update: bytes, source: str) -> None:
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
        backoff = BACKOFF_MIN_S
        rng = random.Random()
        try:
            while True:
                try:
                    await self.sync_once()
                    backoff = BACKOFF_MIN_S
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._pull_forever, nursery.cancel_scope)
                        nursery.start_soon(self._push_forever, nursery.cancel_scope)
                except RemovedFromGroup as exc:
                    self._set_status(str(exc))
                    log.warning("blind store %s: %s", self.url, exc)
                    return
                except BlindStoreError as exc:
                    self._set_status(str(exc))
                    log.info("blind store %s: %s", self.url, exc)
                    await trio.sleep(backoff * (0.75 + rng.random() / 2))
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
        finally:
            self.store.remove_listener(self._on_update)

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

    async def sync_once(self, *, compact: bool = False) -> SyncReport:
        """Catch up both ways now: move to the newest epoch, pull all, push all."""
        report = SyncReport()
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

    async def pull(self, *, wait_s: float = 0, report: SyncReport | None = None) -> PullAnswer:
        report = report or SyncReport()
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
        self, records: Iterable[tuple[int, bytes]], epoch: int, report: SyncReport
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
        report: SyncReport, deferred: list[bytes] | None,
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

    def _reject(self, report: SyncReport, message: str) -> None:
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
        report = SyncReport()
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
            with self.group.stored.doc.transaction(origin=self.origin):
                self.group.stored.doc.apply_update(opened.payload)
            self.group.refresh()
        await self.store.wait_durable()
        if not self._epoch_moved():
            raise RemovedFromGroup(
                "the blind store refuses this device: its group moved to a newer epoch "
                "without it (was it removed?)")


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


def open_http_client() -> httpx.AsyncClient:
    """One client for all stores of a node (connection reuse)."""
    return httpx.AsyncClient(timeout=httpx.Timeout(REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))


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
