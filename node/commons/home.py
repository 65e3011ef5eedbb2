"""What a node keeps for the Commons: author keys, known servers, the consent ledger, its items.

Author keys (``authors.json`` in the home, mode 0600) are pseudonymous, never a
device key; each Commons document is owned by one. Servers (``commons.json``)
are kept with their pinned server key. :mod:`node.commons` syncs with a server
and has the theory of operation.

Received documents stay in the store: ``mirror commons read`` works offline
from that cache. The consent ledger (``consent/commons``, always ``local``)
records what was published, where and when, and what was withdrawn.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycrdt import Map

from crdt import DocStore, StoredDoc, SyncClass
from crdt.commons import (
    DOC_KIND,
    AuthorKey,
    CommonsError,
    CommonsItem,
    is_commons_id,
    make_doc_id,
    parse_doc_id,
    read_item,
    write_item,
)
from crdt.values import format_timestamp, utc_now

from ..errors import MirrorError
from ..files import write_private_json

log = logging.getLogger("mirror.commons")

AUTHORS_FILE = "authors.json"
SERVERS_FILE = "commons.json"
LEDGER_DOC_ID = "consent/commons"
LEDGER_KIND = "consent-ledger"
LEDGER_ROOT = "published"
PROTOCOL_PATH = "/v1/commons"


# --------------------------------------------------------------------------- files in the home


def _write_private_json(path: Path, value: Any) -> None:
    write_private_json(path, value, indent=2)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise MirrorError(f"{path}: unreadable ({exc})") from None
    if not isinstance(value, dict):
        raise MirrorError(f"{path}: not a JSON object")
    return value


class AuthorKeys:
    """The person's author keys (``authors.json``, 0600). The first is the default."""

    def __init__(self, home: Path) -> None:
        self.path = home / AUTHORS_FILE

    def all(self) -> list[AuthorKey]:
        keys = []
        for entry in _read_json(self.path).get("authors", []):
            try:
                keys.append(AuthorKey(bytes.fromhex(entry["seed"])))
            except (KeyError, TypeError, ValueError):
                raise MirrorError(f"{self.path}: a damaged author key") from None
        return keys

    def create(self) -> AuthorKey:
        # Read-modify-write under an exclusive lock: two processes creating a key at
        # once must not lose one (a lost author key can never withdraw its posts).
        lock = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = _read_json(self.path)
            key = AuthorKey(os.urandom(32))
            data.setdefault("authors", []).append(
                {"seed": key.seed.hex(), "public": key.public_hex,
                 "created_at": format_timestamp(utc_now())})
            _write_private_json(self.path, data)
        finally:
            os.close(lock)
        return key

    def default(self) -> AuthorKey:
        keys = self.all()
        return keys[0] if keys else self.create()

    def owner_of(self, doc_id: str) -> AuthorKey | None:
        try:
            owner = parse_doc_id(doc_id).owner
        except CommonsError:
            return None
        return next((k for k in self.all() if k.public == owner), None)


@dataclass(frozen=True)
class CommonsServer:
    url: str
    server_key: bytes

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.rstrip("/").removeprefix("http") + PROTOCOL_PATH


class ServerList:
    """Commons servers this node knows, each with its pinned server key."""

    def __init__(self, home: Path) -> None:
        self.path = home / SERVERS_FILE

    def all(self) -> list[CommonsServer]:
        out = []
        for entry in _read_json(self.path).get("servers", []):
            try:
                out.append(CommonsServer(str(entry["url"]), bytes.fromhex(entry["server_key"])))
            except (KeyError, TypeError, ValueError):
                raise MirrorError(f"{self.path}: a damaged server entry") from None
        return out

    def add(self, server: CommonsServer) -> None:
        data = _read_json(self.path)
        servers = [s for s in data.get("servers", []) if s.get("url") != server.url]
        servers.insert(0, {"url": server.url, "server_key": server.server_key.hex()})
        data["servers"] = servers
        _write_private_json(self.path, data)

    def default(self) -> CommonsServer:
        servers = self.all()
        if not servers:
            raise MirrorError("no Commons server yet: add one with 'mirror commons add URL'")
        return servers[0]


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise MirrorError(f"a Commons URL starts with http:// or https:// (got {url!r})")
    return url


# --------------------------------------------------------------------------- the consent ledger


@dataclass(frozen=True)
class LedgerEntry:
    doc_id: str
    what: str
    summary: str
    server: str
    published_at: str
    sent_at: str = ""
    withdrawn_at: str = ""


class ConsentLedger:
    """What this person published, where and when — a ``local`` document, never synced."""

    def __init__(self, stored: StoredDoc) -> None:
        self.stored = stored

    @classmethod
    async def open(cls, store: DocStore) -> ConsentLedger:
        stored = await store.open_doc(LEDGER_DOC_ID, kind=LEDGER_KIND, sync_class=SyncClass.LOCAL)
        return cls(stored)

    def _map(self) -> Map[Any]:
        root: Map[Any] = self.stored.doc.get(LEDGER_ROOT, type=Map)
        return root

    def entries(self) -> list[LedgerEntry]:
        out = []
        for _, raw in self._map().items():
            try:
                value = json.loads(raw) if isinstance(raw, str) else None
                out.append(LedgerEntry(**value))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                log.warning("skipped a damaged ledger entry")
        return sorted(out, key=lambda e: (e.published_at, e.doc_id))

    def get(self, doc_id: str) -> LedgerEntry | None:
        return next((e for e in self.entries() if e.doc_id == doc_id), None)

    def record(self, entry: LedgerEntry) -> None:
        self._map()[entry.doc_id] = json.dumps(entry.__dict__, sort_keys=True)

    def withdrawn(self) -> set[str]:
        return {e.doc_id for e in self.entries() if e.withdrawn_at}


# --------------------------------------------------------------------------- writing items


async def create_item(
    store: DocStore, author: AuthorKey, kind: str, fields: dict[str, str]
) -> StoredDoc:
    """Write a new Commons document owned by *author* into the node's store."""
    doc_id = make_doc_id(kind, author.public, os.urandom(8))
    values = {"created_at": format_timestamp(utc_now()), **fields}
    stored = await store.open_doc(doc_id, kind=DOC_KIND, sync_class=SyncClass.COMMONS)
    store.ensure_writable()
    write_item(stored.doc, kind, values)
    await store.wait_durable()
    return stored


async def load_cache(store: DocStore, hidden: Iterable[str] = ()) -> list[CommonsItem]:
    """Every readable Commons item in the node's cache (withdrawn ones left out)."""
    skip = set(hidden)
    items = []
    for info in store.documents(DOC_KIND):
        if info.sync_class is not SyncClass.COMMONS or info.doc_id in skip:
            continue
        if not is_commons_id(info.doc_id):
            continue
        stored = await store.open_doc(info.doc_id, kind=DOC_KIND, create=False)
        try:
            items.append(read_item(info.doc_id, stored.doc))
        except CommonsError:
            continue
    return items
