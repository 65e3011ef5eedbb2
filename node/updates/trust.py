"""The keys this node trusts to sign releases: ``HOME/trusted-keys.json``.

::

    {"version": 1,
     "keys": [{"key": "ed25519:…", "label": "upstream", "added": "2026-05-01T12:00:00Z"}]}

The person chooses which fork to follow by choosing these keys; Mirror ships
with none. The file is written atomically with mode 0600, and a file that
others may write is refused: whoever can add a key here can install code.
"""

from __future__ import annotations

import json
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from ..files import write_private_json
from .errors import ManifestError, UpdateError
from .manifest import normalize_public_key, release_date, short_key

TRUST_FILE_VERSION = 1
MAX_LABEL_CHARS = 64


@dataclass(frozen=True)
class TrustedKey:
    key: str
    label: str
    added: str


def validate_label(label: str) -> str:
    label = label.strip()
    if not 1 <= len(label) <= MAX_LABEL_CHARS or not label.isprintable():
        raise UpdateError(f"a key's label must be 1-{MAX_LABEL_CHARS} printable characters")
    if label.startswith("ed25519:"):
        raise UpdateError("a label cannot look like a key")
    return label


class TrustedKeys:
    """The trust file of one home. Every method reads the file afresh."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[TrustedKey, ...]:
        try:
            st = self.path.stat()
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return ()
        except OSError as exc:
            raise UpdateError(f"{self.path}: cannot read ({exc.strerror})") from None
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise UpdateError(
                f"{self.path}: others may write it, so its keys cannot be trusted "
                f"(check it, then: chmod 600 {self.path})"
            )
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or data.get("version") != TRUST_FILE_VERSION:
                raise ValueError("version")
            keys = tuple(
                TrustedKey(normalize_public_key(k["key"]), validate_label(k["label"]),
                           str(k["added"]))
                for k in data["keys"]
            )
        except (ValueError, KeyError, TypeError, AttributeError, ManifestError, UpdateError):
            raise UpdateError(f"{self.path}: not a trusted-keys file Mirror can read") from None
        return keys

    def as_mapping(self) -> dict[str, str]:
        """key → label, for :func:`verify_signed_manifest`."""
        return {k.key: k.label for k in self.load()}

    def add(self, key: str, label: str) -> TrustedKey:
        key = normalize_public_key(key)
        label = validate_label(label)
        keys = self.load()
        for existing in keys:
            if existing.key == key:
                raise UpdateError(f"{short_key(key)} is already trusted as {existing.label!r}")
            if existing.label == label:
                raise UpdateError(f"the label {label!r} is already used for "
                                  f"{short_key(existing.key)}; choose another")
        entry = TrustedKey(key, label, release_date())
        self._save((*keys, entry))
        return entry

    def remove(self, key_or_label: str) -> TrustedKey:
        keys = self.load()
        wanted = key_or_label.strip()
        if wanted.startswith("ed25519:"):
            try:
                wanted = normalize_public_key(wanted)
            except ManifestError:
                pass
        for existing in keys:
            if wanted in (existing.key, existing.label):
                self._save(tuple(k for k in keys if k is not existing))
                return existing
        raise UpdateError(f"no trusted key is {short_key(key_or_label)!r} "
                          "(see: mirror update keys list)")

    def _save(self, keys: tuple[TrustedKey, ...]) -> None:
        data = {"version": TRUST_FILE_VERSION, "keys": [asdict(k) for k in keys]}
        try:
            write_private_json(self.path, data, indent=2)
        except OSError as exc:
            raise UpdateError(f"{self.path}: cannot write ({exc.strerror})") from None
