"""The blind store's HTTP client, this device's saved view of each store, and
store URLs. :mod:`node.sync.blind` does the syncing.

Errors (all :class:`~node.errors.MirrorError`, so a command prints one line)::

    BlindStoreError
    ├── StoreUnavailable    network failure, timeout, 5xx, malformed answer: retry later
    ├── StoreRefused        4xx (and 507 quota); carries the status
    ├── StoreRetired        410: this epoch's log was retired; carries the notice
    └── RemovedFromGroup    the notice shows this device's group moved on without it

httpx exceptions are translated here and never leave this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from protocol import RemoteProtocolError
from protocol.store import decode_pull, encode_upload

from ..config import is_loopback_host, is_loopback_or_lan
from ..errors import MirrorError
from ..files import write_private_json
from .boundary import map_exceptions
from .limits import BLIND_STORE_REQUEST_TIMEOUT_S, CONNECT_TIMEOUT_S

log = logging.getLogger("mirror.blind")

STATE_FILE = "blind-stores.json"
STATE_VERSION = 1


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
    """A blind store's answer to a pull: records, cursor, head, what the snapshot covers,
    and whether more is waiting."""

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
                       read_s: float = BLIND_STORE_REQUEST_TIMEOUT_S) -> httpx.Response:
        def unreachable(exc: BaseException) -> StoreUnavailable:
            return StoreUnavailable(f"cannot reach the blind store {self._base} "
                                    f"({type(exc).__name__})")

        with map_exceptions({httpx.HTTPError: unreachable}):
            response = await self._http.request(
                method, self._base + path, content=content, params=params,
                headers=self._headers,
                timeout=httpx.Timeout(read_s, connect=CONNECT_TIMEOUT_S),
            )
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
                                read_s=BLIND_STORE_REQUEST_TIMEOUT_S + wait_s)
        with map_exceptions({(RemoteProtocolError, KeyError, ValueError): _malformed}):
            records = decode_pull(r.content)
            return PullAnswer(
                records, int(r.headers["mirror-cursor"]), int(r.headers["mirror-head"]),
                int(r.headers["mirror-covers"]), r.headers["mirror-more"] == "1",
            )

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
    return is_loopback_host(host)


def usable_stores(mirror_mode: str, urls: Iterable[str]) -> list[str]:
    """The stores this node may reach in its mode (``local``: this machine and the LAN)."""
    return [u for u in urls if mirror_mode != "local" or is_loopback_or_lan(u)]


def save_state(home: Path, url: str, state: LogState | None, *, add: bool = True) -> bool:
    """Update one store's entry (None removes it); atomic. With ``add=False`` an
    entry that is gone (``mirror store remove`` meanwhile) is not brought back:
    returns False."""
    states = load_states(home)
    if state is None:
        states.pop(url, None)
    elif url in states or add:
        states[url] = state
    else:
        return False
    data = {"version": STATE_VERSION, "stores": {u: s.to_json() for u, s in states.items()}}
    path = home / STATE_FILE
    write_private_json(path, data)
    return True


def open_http_client() -> httpx.AsyncClient:
    """One client for all stores of a node (connection reuse)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(BLIND_STORE_REQUEST_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))


def _malformed(exc: BaseException) -> StoreUnavailable:
    return StoreUnavailable(f"the blind store sent a malformed answer ({exc})")
