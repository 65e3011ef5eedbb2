"""Sync classes: where a document is allowed to go."""

from __future__ import annotations

import enum


class SyncClass(enum.StrEnum):
    """Where a document may travel.

    ``LOCAL`` never leaves the device and is the default for everything new.
    ``DEVICES`` is synced among the person's own devices, end-to-end encrypted.
    ``COMMONS`` is public and hosted by Commons peers.
    """

    LOCAL = "local"
    DEVICES = "devices"
    COMMONS = "commons"

    @classmethod
    def parse(cls, value: str) -> SyncClass:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(c.value for c in cls)
            raise ValueError(f"unknown sync class {value!r} (expected one of: {names})") from None
