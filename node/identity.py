"""This device's keys: its Ed25519 device key and the group secrets it holds by epoch.

Secrets live in ``keyring.json`` in the home (mode 0600, written atomically),
never in a CRDT document. When the home is encrypted at rest, the file is
sealed (XChaCha20-Poly1305) with a key derived from the home's passphrase
(registered by ``open_core`` with :func:`register_sealing_key`), so no secret
is ever plaintext on disk: the membership document only carries each epoch's
secret *sealed* to each device's key (see ``crdt/devices.py``).

A device starts alone, in a group of one at epoch 0 created on first use.
Pairing replaces that with the group of the device it joins. Removing a device
starts a new epoch whose secret is sealed to the remaining devices only.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing
import nacl.utils

from protocol.keys import device_id

from .errors import HomeError
from .files import write_private_json

KEYRING_NAME = "keyring.json"
KEYRING_VERSION = 1
SECRET_BYTES = 32
SEALED_AD = b"mirror/keyring/v1"
NONCE_BYTES = 24

# home path -> key that seals its keyring, while an encrypted home is open.
_SEALING_KEYS: dict[str, bytes] = {}


def register_sealing_key(home_path: Path, key: bytes) -> None:
    """While an encrypted home is open: seal its keyring with *key*."""
    _SEALING_KEYS[str(home_path.resolve())] = key


def forget_sealing_key(home_path: Path) -> None:
    _SEALING_KEYS.pop(str(home_path.resolve()), None)


def _sealing_key_for(home_path: Path) -> bytes | None:
    return _SEALING_KEYS.get(str(home_path.resolve()))


def device_id_for(public_key: bytes) -> str:
    """A short, stable, printable id of a device key (not secret, not a name):
    ``protocol.keys.device_id``, which spec/membership.md defines."""
    return device_id(public_key)


def default_device_name() -> str:
    try:
        return socket.gethostname().split(".")[0][:64] or "this device"
    except OSError:
        return "this device"


@dataclass
class Keyring:
    """Secrets of this device. Create with :func:`load_keyring`."""

    path: Path
    device_seed: bytes
    device_name: str
    epochs: dict[int, bytes] = field(default_factory=dict)
    sealing_key: bytes | None = field(default=None, repr=False)

    # -------------------------------------------------------------- device

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.device_seed)

    @property
    def device_public(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def device_id(self) -> str:
        return device_id_for(self.device_public)

    # -------------------------------------------------------------- group

    @property
    def epoch(self) -> int:
        return max(self.epochs)

    @property
    def group_secret(self) -> bytes:
        return self.epochs[self.epoch]

    def adopt_group(self, epochs: dict[int, bytes]) -> None:
        """Replace this device's group with the one it joined."""
        if not epochs or any(len(s) != SECRET_BYTES for s in epochs.values()):
            raise ValueError("a group needs at least one 32-byte secret")
        self.epochs = dict(epochs)
        self.save()

    def add_epoch(self, epoch: int, secret: bytes) -> None:
        if len(secret) != SECRET_BYTES:
            raise ValueError("group secrets are 32 bytes")
        self.epochs[epoch] = secret
        self.save()

    # -------------------------------------------------------------- sealing

    def seal_to(self, public_key: bytes, secret: bytes) -> str:
        """Seal *secret* to a device's Ed25519 public key (X25519 sealed box)."""
        curve = nacl.signing.VerifyKey(public_key).to_curve25519_public_key()
        return base64.b64encode(nacl.public.SealedBox(curve).encrypt(secret)).decode("ascii")

    def open_sealed(self, sealed: str) -> bytes | None:
        """Open a secret sealed to this device; ``None`` if it is not ours or damaged."""
        try:
            data = base64.b64decode(sealed, validate=True)
            private = self.signing_key.to_curve25519_private_key()
            secret = nacl.public.SealedBox(private).decrypt(data)
        except (ValueError, nacl.exceptions.CryptoError):
            return None
        return secret if len(secret) == SECRET_BYTES else None

    # -------------------------------------------------------------- persistence

    def save(self) -> None:
        data: dict[str, object] = {
            "version": KEYRING_VERSION,
            "device_seed": self.device_seed.hex(),
            "device_name": self.device_name,
            "epochs": {str(e): s.hex() for e, s in sorted(self.epochs.items())},
        }
        if self.sealing_key is not None:
            nonce = nacl.utils.random(NONCE_BYTES)
            sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
                json.dumps(data).encode("utf-8"), SEALED_AD, nonce, self.sealing_key
            )
            data = {"version": KEYRING_VERSION,
                    "sealed": base64.b64encode(nonce + sealed).decode("ascii")}
        write_private_json(self.path, data)


def load_keyring(
    home_path: Path, *, create: bool = True, sealing_key: bytes | None = None
) -> Keyring:
    """This device's keyring; created (device key + a group of one) on first use.

    *sealing_key* (default: the one registered for the home) opens a sealed
    keyring; a plain keyring loaded with a key is sealed on the spot."""
    path = home_path / KEYRING_NAME
    key = sealing_key if sealing_key is not None else _sealing_key_for(home_path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not create:
            raise HomeError(f"{path}: no keyring (this device has no keys yet)") from None
        ring = Keyring(
            path=path,
            device_seed=os.urandom(32),
            device_name=default_device_name(),
            epochs={0: os.urandom(SECRET_BYTES)},
            sealing_key=key,
        )
        ring.save()
        return ring
    except OSError as exc:
        raise HomeError(f"{path}: cannot read ({exc.strerror})") from None
    if path.stat().st_mode & 0o077:
        raise HomeError(f"{path}: readable by others; run: chmod 600 {path}")
    try:
        data = json.loads(raw)
        was_sealed = isinstance(data, dict) and "sealed" in data
        if was_sealed:
            data = _unseal(path, data, key)
        if data.get("version") != KEYRING_VERSION:
            raise ValueError(f"unknown keyring version {data.get('version')!r}")
        seed = bytes.fromhex(data["device_seed"])
        epochs = {int(e): bytes.fromhex(s) for e, s in data["epochs"].items()}
        name = str(data["device_name"])
        if len(seed) != 32 or not epochs or any(len(s) != 32 for s in epochs.values()):
            raise ValueError("wrong key sizes")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise HomeError(f"{path}: damaged keyring ({exc})") from None
    ring = Keyring(path=path, device_seed=seed, device_name=name, epochs=epochs, sealing_key=key)
    if key is not None and not was_sealed:
        ring.save()  # the home was encrypted after this keyring was written
    return ring


def _unseal(path: Path, data: dict[str, object], key: bytes | None) -> dict[str, object]:
    if key is None:
        raise HomeError(f"{path}: the keyring is sealed; open the home with its passphrase")
    try:
        blob = base64.b64decode(str(data["sealed"]), validate=True)
        plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            blob[NONCE_BYTES:], SEALED_AD, blob[:NONCE_BYTES], key
        )
    except (ValueError, nacl.exceptions.CryptoError):
        raise HomeError(f"{path}: the sealed keyring cannot be opened (wrong key or damaged)") \
            from None
    opened = json.loads(plain)
    if not isinstance(opened, dict):
        raise HomeError(f"{path}: damaged keyring")
    return opened
