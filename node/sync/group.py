"""The person's group of devices: the keyring (secrets, local) plus the membership
document (public keys and sealed epoch secrets, synced among the devices).

Who may authenticate is decided here: a device key is known while its record
in the membership document is not removed. Removing a device starts a new
epoch whose secret is sealed to each remaining device only; devices that were
offline pick the new secret up from the membership document the next time
they sync (they may still handshake at the previous epoch to get it — a
removed device cannot, because its key is no longer known).

Whatever brings a removal to this device (a removal here, a peer's update to
the membership document, another process's write picked up by the store's
refresh, a blind store), it ends in :meth:`Group.refresh`, which then calls
every *watcher* (:meth:`Group.watch`): that is how live sessions with a device
that has just been removed are ended at once (``node.sync.documents``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from crdt import DocStore, StoredDoc, SyncClass
from crdt.devices import (
    DOC_ID,
    KIND,
    DeviceRecord,
    EpochRecord,
    clean_name,
    mark_removed,
    put_device,
    put_epoch,
    read_devices,
    read_epochs,
    read_removed,
    rename_device,
)
from crdt.values import utc_now
from protocol import Credentials

from ..errors import MirrorError
from ..identity import Keyring, device_id_for

log = logging.getLogger("mirror.group")


class KnownDevices:
    """A live ``Container[bytes]`` of the group's current device keys.

    The handshake consults it for every session, so a removal takes effect for
    the next session at once. It is refreshed from the membership document
    (never read inside a pycrdt callback: :meth:`Group.refresh` is called after).
    """

    def __init__(self) -> None:
        self._keys: frozenset[bytes] = frozenset()

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def replace(self, keys: frozenset[bytes]) -> None:
        self._keys = keys


@dataclass(frozen=True)
class Member:
    """A device of the group as this device sees it."""

    record: DeviceRecord
    is_self: bool


class Group:
    """Membership and keys of this device's group."""

    def __init__(self, keyring: Keyring, stored: StoredDoc) -> None:
        self.keyring = keyring
        self.stored = stored
        self.known = KnownDevices()
        self.excluded = False
        """This device's own record is marked removed (it learned it was removed)."""
        self.removed_ids: frozenset[str] = frozenset()
        """Devices marked removed (never taken back)."""
        self._watchers: list[Callable[[], None]] = []
        self._seen: dict[str, DeviceRecord] = {}
        self.refresh()

    @classmethod
    async def open(cls, store: DocStore, keyring: Keyring) -> Group:
        stored = await store.open_doc(DOC_ID, kind=KIND, sync_class=SyncClass.DEVICES)
        group = cls(keyring, stored)
        if keyring.device_id not in {r.device_id for r in read_devices(stored.doc)}:
            group.add_device(keyring.device_public, keyring.device_name)
        return group

    # -------------------------------------------------------------- reading

    def _records(self) -> list[DeviceRecord]:
        """The membership records, each device's as last seen.

        A record is never deleted (a removal has its own map), but while a peer's
        update waits for the updates it depends on, the records it overwrites can
        be missing from the document for a moment: a device that vanished that way
        is still the member it was, not a removed one."""
        removed = read_removed(self.stored.doc)
        records = {r.device_id: r for r in read_devices(self.stored.doc)}
        for device_id, record in self._seen.items():
            if device_id not in records:
                records[device_id] = record
        self._seen = records
        return sorted(
            (replace(r, removed_at=removed[r.device_id]) if r.active and r.device_id in removed
             else r for r in records.values()),
            key=lambda r: (r.added_at, r.device_id),
        )

    def members(self) -> list[Member]:
        me = self.keyring.device_id
        return [Member(r, r.device_id == me) for r in self._records()]

    def active(self) -> list[DeviceRecord]:
        return [r for r in self._records() if r.active]

    def find(self, ref: str) -> DeviceRecord:
        ref = ref.strip().lower()
        matches = [
            r for r in self._records()
            if r.device_id.startswith(ref) or r.name.lower() == ref
        ]
        if not matches:
            raise MirrorError(f"no device {ref!r} (see: mirror devices)")
        if len(matches) > 1:
            raise MirrorError(f"{ref!r} matches {len(matches)} devices; give more of the id")
        return matches[0]

    def credentials(self, epoch: int | None = None) -> Credentials:
        """Credentials at *epoch* (default: the newest). As a responder this device
        also answers at older epochs it knows, so a device that missed a removal
        can still connect and learn the new epoch; removed devices are refused by
        their key whatever epoch they use."""
        chosen = self.keyring.epoch if epoch is None else epoch
        return Credentials(
            device_seed=self.keyring.device_seed,
            group_secret=self.keyring.epochs[chosen],
            epoch=chosen,
            known_devices=self.known,
            earlier_epochs={e: s for e, s in self.keyring.epochs.items() if e < chosen},
        )

    def epochs_shared_with(self, device_id: str) -> list[int]:
        """The epochs, of those whose secret this device holds, in which *device_id*
        was a member of the group too (newest first).

        A device was a member of every epoch whose secret was sealed to it, and of
        the epoch just before the first of those (it joined during that one; the
        group's first epoch has no record). A device that no epoch was sealed to
        joined during the newest epoch. Read from the membership document only, so
        both devices of a pair agree without talking.
        """
        sealed = [e.epoch for e in read_epochs(self.stored.doc) if device_id in e.sealed]
        if sealed:
            member = {min(sealed) - 1, *sealed}
        else:
            member = {self.keyring.epoch}
        return sorted((e for e in member if e in self.keyring.epochs), reverse=True)

    def watch(self, watcher: Callable[[], None]) -> Callable[[], None]:
        """Call *watcher* after each :meth:`refresh` (membership may have changed);
        returns the function that stops it. A watcher must not raise, and must not
        touch the membership document (it may run inside a peer's update)."""
        self._watchers.append(watcher)

        def unwatch() -> None:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

        return unwatch

    def refresh(self) -> list[int]:
        """Re-read membership; adopt epoch secrets sealed to this device; tell the
        watchers. Returns the epochs newly learned."""
        records = self._records()
        self.known.replace(frozenset(r.public_key for r in records if r.active))
        me = self.keyring.device_id
        self.removed_ids = frozenset(read_removed(self.stored.doc))
        self.excluded = me in self.removed_ids
        learned = []
        for epoch in read_epochs(self.stored.doc):
            if epoch.epoch in self.keyring.epochs or me not in epoch.sealed:
                continue
            secret = self.keyring.open_sealed(epoch.sealed[me])
            if secret is None:
                log.warning("epoch %d: the secret sealed to this device does not open", epoch.epoch)
                continue
            self.keyring.add_epoch(epoch.epoch, secret)
            learned.append(epoch.epoch)
        if self.excluded:
            log.warning("this device was removed from its group")
        for watcher in list(self._watchers):
            watcher()
        return learned

    def admits(self, device_key: bytes | None) -> bool:
        """May a session with the (authenticated) device of *device_key* go on? Not
        once that device is marked removed, nor once this device learned it was
        removed itself. (Who may *start* a session is ``known``, checked by the
        handshake.)"""
        return (device_key is not None and not self.excluded
                and device_id_for(device_key) not in self.removed_ids)

    def removed_self(self) -> bool:
        me = self.keyring.device_id
        return any(r.device_id == me and not r.active for r in read_devices(self.stored.doc))

    # -------------------------------------------------------------- changing

    def add_device(self, public_key: bytes, name: str) -> DeviceRecord:
        record = DeviceRecord(device_id_for(public_key), public_key, name, utc_now())
        put_device(self.stored.doc, record)
        self.refresh()
        return record

    def rename_self(self, name: str) -> None:
        """Give this device a new name, in the keyring and the membership document."""
        clean = clean_name(name)
        self.keyring.device_name = clean
        self.keyring.save()
        rename_device(self.stored.doc, self.keyring.device_id, clean)

    def remove_device(self, ref: str) -> tuple[DeviceRecord, int]:
        """Mark a device removed and start a new epoch sealed to the others."""
        record = self.find(ref)
        if record.device_id == self.keyring.device_id:
            raise MirrorError("this is the device you are on; remove it from another device")
        if not record.active:
            raise MirrorError(f"{record.name} ({record.device_id}) was already removed")
        new_epoch = max([self.keyring.epoch, *[e.epoch for e in read_epochs(self.stored.doc)]]) + 1
        secret = os.urandom(32)
        remaining = [r for r in self.active() if r.device_id != record.device_id]
        sealed = {r.device_id: self.keyring.seal_to(r.public_key, secret) for r in remaining}
        with self.stored.doc.transaction():
            mark_removed(self.stored.doc, record.device_id, utc_now())
            put_epoch(
                self.stored.doc,
                EpochRecord(new_epoch, utc_now(), self.keyring.device_id, sealed),
            )
        self.keyring.add_epoch(new_epoch, secret)
        self.refresh()
        return record, new_epoch
