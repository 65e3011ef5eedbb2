"""The membership document: a person's devices and the sealed group secrets by epoch.

One document, ``devices`` (kind ``devices``, class ``devices``), shared by the
person's devices::

    members: device_id -> {public_key (hex), name, added_at, removed_at | None}
             (a record whose id is not the device id of its key is ignored)
    removed: device_id -> {removed_at}
    epochs:  "N"       -> {created_at, created_by, sealed: device_id -> base64}

Removals live in their own map, keyed by device: two devices may write a
member's record concurrently (pairing does), and the CRDT keeps one of the two
records — a removal written into the losing record would be lost. A key in
``removed`` is never taken back, so removal is monotonic.

``sealed`` holds the epoch's group secret sealed (X25519 sealed box) to each
device that belongs to the group at that epoch. A removed device is not among
them, so it can read nothing of an epoch started after its removal. No secret
is ever in this document in the clear.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pycrdt import Doc, Map

from .values import check_value, format_timestamp, parse_timestamp, read_int

KIND = "devices"
DOC_ID = "devices"
MEMBERS = "members"
REMOVED = "removed"
EPOCHS = "epochs"
MAX_NAME_CHARS = 64
MAX_NAME_BYTES = 128
"""UTF-8 bytes of a name: what a pairing welcome carries per device
(``protocol.limits.MAX_DEVICE_NAME_BYTES``; a test checks they agree)."""


@dataclass(frozen=True)
class DeviceRecord:
    """One device of the membership document: id, public key, name, and when it was
    added (and removed)."""

    device_id: str
    public_key: bytes
    name: str
    added_at: datetime
    removed_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of the membership document: when and by whom it was started, and the new
    secret sealed to each remaining device (device id -> sealed box, hex)."""

    epoch: int
    created_at: datetime
    created_by: str
    sealed: dict[str, str]


PUBLIC_KEY_BYTES = 32


def device_id_of(public_key: bytes) -> str:
    """The id a member's record must be filed under: BLAKE2b-64 of its key, in hex.

    The same derivation as ``protocol.keys.device_id`` (crdt imports nothing of
    protocol's; a test checks that the two agree)."""
    return hashlib.blake2b(public_key, digest_size=8, person=b"mirror/device-id").hexdigest()


def _members(doc: Doc[Any]) -> Map[Any]:
    root: Map[Any] = doc.get(MEMBERS, type=Map)
    return root


def _removed(doc: Doc[Any]) -> Map[Any]:
    root: Map[Any] = doc.get(REMOVED, type=Map)
    return root


def _epochs(doc: Doc[Any]) -> Map[Any]:
    root: Map[Any] = doc.get(EPOCHS, type=Map)
    return root


def clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValueError("a device needs a name")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"device names are at most {MAX_NAME_CHARS} characters")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ValueError(f"device names are at most {MAX_NAME_BYTES} bytes of UTF-8")
    check_value(name, path="name")
    return name


def put_device(doc: Doc[Any], record: DeviceRecord) -> None:
    check_value(record.device_id, path="device_id")
    entry = {
        "public_key": record.public_key.hex(),
        "name": clean_name(record.name),
        "added_at": format_timestamp(record.added_at),
        "removed_at": format_timestamp(record.removed_at) if record.removed_at else None,
    }
    with doc.transaction():
        _members(doc)[record.device_id] = Map(entry)


def mark_removed(doc: Doc[Any], device_id: str, when: datetime) -> None:
    if not isinstance(_members(doc).get(device_id), Map):
        raise KeyError(device_id)
    _removed(doc)[device_id] = Map({"removed_at": format_timestamp(when)})


def rename_device(doc: Doc[Any], device_id: str, name: str) -> None:
    entry = _members(doc).get(device_id)
    if not isinstance(entry, Map):
        raise KeyError(device_id)
    entry["name"] = clean_name(name)


def read_devices(doc: Doc[Any]) -> list[DeviceRecord]:
    out = []
    data = _members(doc).to_py() or {}
    removals = _removed(doc).to_py() or {}
    for device_id, entry in data.items():
        try:
            removed = entry.get("removed_at")
            mark = removals.get(device_id)
            if isinstance(mark, dict) and isinstance(mark.get("removed_at"), str):
                removed = mark["removed_at"]
            public_key = bytes.fromhex(entry["public_key"])
            if len(public_key) != PUBLIC_KEY_BYTES or device_id_of(public_key) != device_id:
                # Filed under another device's id: a removal (keyed by id) would miss
                # it, and a new epoch would be sealed to its key. Never trusted.
                continue
            out.append(
                DeviceRecord(
                    device_id=device_id,
                    public_key=public_key,
                    name=str(entry["name"]),
                    added_at=parse_timestamp(entry["added_at"]),
                    removed_at=parse_timestamp(removed) if isinstance(removed, str) else None,
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue  # a malformed record is ignored, never trusted
    out.sort(key=lambda r: (r.added_at, r.device_id))
    return out


def read_removed(doc: Doc[Any]) -> dict[str, datetime]:
    """When each device marked removed was removed (marks are never taken back).

    Read this, not a record's absence, to decide that a device was removed:
    while a peer's update is applied a record can be missing for a moment (its
    replacement is still pending its dependencies), which is not a removal."""
    out = {}
    for device_id, mark in (_removed(doc).to_py() or {}).items():
        if isinstance(mark, dict) and isinstance(mark.get("removed_at"), str):
            try:
                out[str(device_id)] = parse_timestamp(mark["removed_at"])
            except ValueError:
                continue  # a malformed mark is ignored, as read_devices does
    return out


def put_epoch(doc: Doc[Any], record: EpochRecord) -> None:
    if not 0 <= record.epoch < 2**53:
        raise ValueError("epoch out of range")
    check_value(record.sealed, path="sealed")
    with doc.transaction():
        _epochs(doc)[str(record.epoch)] = Map(
            {
                "created_at": format_timestamp(record.created_at),
                "created_by": record.created_by,
                "sealed": Map(dict(record.sealed)),
            }
        )


def read_epochs(doc: Doc[Any]) -> list[EpochRecord]:
    out = []
    data = _epochs(doc).to_py() or {}
    for key, entry in data.items():
        try:
            epoch = int(key)
            sealed = entry.get("sealed") or {}
            out.append(
                EpochRecord(
                    epoch=epoch,
                    created_at=parse_timestamp(entry["created_at"]),
                    created_by=str(entry.get("created_by", "")),
                    sealed={str(k): str(v) for k, v in sealed.items()},
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    out.sort(key=lambda r: r.epoch)
    return out


_ = read_int  # epochs are stored as map keys (text), never as floats
