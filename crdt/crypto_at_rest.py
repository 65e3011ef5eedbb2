"""Optional encryption at rest: a passphrase-derived key seals every CRDT blob of a store.

Theory of operation
-------------------
* Argon2id (``nacl.pwhash.argon2id``) turns the passphrase and a random salt
  into a 32-byte master key. The parameters, the salt and a *verifier* (a known
  constant sealed under the key) sit in the store's ``meta`` table under
  ``encryption``, so a wrong passphrase is recognised before anything is read
  or written, and the parameters can change without a schema change.
* Purpose keys are derived from the master key with keyed BLAKE2b and distinct
  purposes (``blob``, ``keyring``, ``verifier``): a key is never used for two
  things.
* Each blob (an update or a snapshot) is sealed on the storage thread, just
  before INSERT, and opened just after SELECT, with XChaCha20-Poly1305 and a
  random 24-byte nonce. The associated data names what the blob is and its
  document id, so a blob moved to another document or another column fails to
  open. Stored form: ``version byte (1) ‖ nonce (24) ‖ ciphertext+tag``.
* What stays readable in the file: document ids, kinds, sync classes,
  timestamps, client ids and sizes — never text.

The master key lives only in memory. :func:`encrypt_store_file` turns a plain
store into an encrypted one by building a new file and swapping it in only
after every row was read back and compared.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
import nacl.pwhash
import nacl.utils

from . import schema
from .errors import CorruptStoreError, StoreOpenError
from .storage_backend import DbConnection

META_KEY = "encryption"
FORMAT_VERSION = 1
BLOB_VERSION = b"\x01"
NONCE_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
TAG_BYTES = sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES
KEY_BYTES = 32
SALT_BYTES = nacl.pwhash.argon2id.SALTBYTES
VERIFIER_PLAINTEXT = b"mirror: the passphrase is right"
AD_PREFIX = b"mirror/at-rest/v1\x00"

# Argon2id cost profiles. Real use: "interactive" for a store (paid at every
# start) and "moderate" for a backup (paid once, and the file leaves the
# device). Tests and slow machines choose with MIRROR_KDF_PROFILE.
ENV_KDF_PROFILE = "MIRROR_KDF_PROFILE"
KDF_PROFILES: dict[str, tuple[int, int]] = {
    "min": (nacl.pwhash.argon2id.OPSLIMIT_MIN, nacl.pwhash.argon2id.MEMLIMIT_MIN),
    "interactive": (
        nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE, nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
    ),
    "moderate": (nacl.pwhash.argon2id.OPSLIMIT_MODERATE, nacl.pwhash.argon2id.MEMLIMIT_MODERATE),
    "sensitive": (
        nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE, nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
    ),
}
STORE_PROFILE = "interactive"
# A file states its own parameters; refuse ones that would exhaust this machine.
MAX_OPSLIMIT = 4 * nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
MAX_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE


class EncryptionError(StoreOpenError):
    """The store is encrypted and cannot be opened as asked. Nothing was changed."""


class PassphraseRequiredError(EncryptionError):
    """The store is encrypted and no passphrase was given."""


class WrongPassphraseError(EncryptionError):
    """The passphrase does not open this store."""


# --------------------------------------------------------------------------- KDF


@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters and salt that derive the at-rest key from the passphrase."""

    opslimit: int
    memlimit: int
    salt: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "alg": "argon2id13",
            "opslimit": self.opslimit,
            "memlimit": self.memlimit,
            "salt": base64.b64encode(self.salt).decode("ascii"),
        }

    @classmethod
    def from_json(cls, data: Any) -> KdfParams:
        """Read parameters a file states; ``ValueError`` for anything odd or too costly."""
        if not isinstance(data, dict) or data.get("alg") != "argon2id13":
            raise ValueError("unknown key derivation")
        ops, mem = data.get("opslimit"), data.get("memlimit")
        if not (isinstance(ops, int) and isinstance(mem, int)) or isinstance(ops, bool) or \
                isinstance(mem, bool):
            raise ValueError("key derivation limits are not integers")
        if not (nacl.pwhash.argon2id.OPSLIMIT_MIN <= ops <= MAX_OPSLIMIT) or not (
            nacl.pwhash.argon2id.MEMLIMIT_MIN <= mem <= MAX_MEMLIMIT
        ):
            raise ValueError("key derivation limits out of range")
        try:
            salt = base64.b64decode(str(data.get("salt")), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("salt is not base64") from None
        if len(salt) != SALT_BYTES:
            raise ValueError("salt has the wrong size")
        return cls(ops, mem, salt)


def kdf_profile(default: str) -> tuple[int, int]:
    name = os.environ.get(ENV_KDF_PROFILE, "").strip().lower() or default
    if name not in KDF_PROFILES:
        raise ValueError(f"{ENV_KDF_PROFILE} must be one of {', '.join(KDF_PROFILES)}")
    return KDF_PROFILES[name]


def new_kdf_params(profile: str) -> KdfParams:
    """Fresh salt; cost from *profile* unless ``MIRROR_KDF_PROFILE`` overrides it."""
    ops, mem = kdf_profile(profile)
    return KdfParams(ops, mem, nacl.utils.random(SALT_BYTES))


def derive_key(passphrase: str | bytes, params: KdfParams) -> bytes:
    """Argon2id; blocking (tens of ms to seconds): call it off the trio thread."""
    secret = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    if not secret:
        raise ValueError("the passphrase is empty")
    return bytes(nacl.pwhash.argon2id.kdf(
        KEY_BYTES, secret, params.salt, opslimit=params.opslimit, memlimit=params.memlimit
    ))


def purpose_key(master: bytes, purpose: str) -> bytes:
    """A key for one purpose only (keyed BLAKE2b; domain-separated by *purpose*)."""
    return hashlib.blake2b(
        purpose.encode("ascii"), key=master, digest_size=KEY_BYTES, person=b"mirror/purpose"
    ).digest()


# --------------------------------------------------------------------------- blobs


class BlobCipher:
    """Seals and opens the blobs of one store; holds its keys in memory only."""

    def __init__(self, master: bytes, params: KdfParams) -> None:
        if len(master) != KEY_BYTES:
            raise ValueError("master key must be 32 bytes")
        self._master = master
        self._blob_key = purpose_key(master, "blob")
        self.params = params

    def purpose_key(self, purpose: str) -> bytes:
        if purpose in ("blob", "verifier"):
            raise ValueError(f"the {purpose!r} key is not handed out")
        return purpose_key(self._master, purpose)

    @staticmethod
    def _ad(what: str, doc_id: str) -> bytes:
        return AD_PREFIX + what.encode("ascii") + b"\x00" + doc_id.encode("utf-8")

    def seal(self, what: str, doc_id: str, data: bytes) -> bytes:
        nonce = nacl.utils.random(NONCE_BYTES)
        sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            data, self._ad(what, doc_id), nonce, self._blob_key
        )
        return BLOB_VERSION + nonce + sealed

    def open(self, what: str, doc_id: str, blob: bytes) -> bytes:
        if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[:1] != BLOB_VERSION:
            raise CorruptStoreError(f"document {doc_id}: stored {what} is not sealed data")
        nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
        try:
            return bytes(sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed, self._ad(what, doc_id), nonce, self._blob_key
            ))
        except nacl.exceptions.CryptoError:
            raise CorruptStoreError(
                f"document {doc_id}: stored {what} fails authentication (damaged or moved)"
            ) from None

    def verifier(self) -> bytes:
        nonce = nacl.utils.random(NONCE_BYTES)
        key = purpose_key(self._master, "verifier")
        return nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            VERIFIER_PLAINTEXT, AD_PREFIX + b"verifier", nonce, key
        )

    def check_verifier(self, blob: bytes) -> bool:
        key = purpose_key(self._master, "verifier")
        try:
            plain = sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                blob[NONCE_BYTES:], AD_PREFIX + b"verifier", blob[:NONCE_BYTES], key
            )
        except (nacl.exceptions.CryptoError, ValueError):
            return False
        return bool(plain == VERIFIER_PLAINTEXT)


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class EncryptionHeader:
    """What ``meta.encryption`` holds: how to derive the key and how to check it."""

    params: KdfParams
    verifier: bytes

    def to_text(self) -> str:
        return json.dumps({
            "version": FORMAT_VERSION,
            "cipher": "xchacha20poly1305-ietf",
            "kdf": self.params.to_json(),
            "verifier": base64.b64encode(self.verifier).decode("ascii"),
        }, sort_keys=True)

    @classmethod
    def from_text(cls, text: str, where: str) -> EncryptionHeader:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION or \
                    data.get("cipher") != "xchacha20poly1305-ietf":
                raise ValueError("unknown encryption format")
            params = KdfParams.from_json(data.get("kdf"))
            verifier = base64.b64decode(str(data.get("verifier")), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise CorruptStoreError(f"{where}: damaged encryption header ({exc})") from None
        return cls(params, verifier)


def new_encryption(passphrase: str | bytes, profile: str = STORE_PROFILE) -> tuple[
    EncryptionHeader, BlobCipher
]:
    params = new_kdf_params(profile)
    cipher = BlobCipher(derive_key(passphrase, params), params)
    return EncryptionHeader(params, cipher.verifier()), cipher


def read_header(conn: DbConnection, where: str) -> EncryptionHeader | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
    if row is None or row[0] in (None, "", "none"):
        return None
    return EncryptionHeader.from_text(str(row[0]), where)


def unlock(header: EncryptionHeader, passphrase: str | bytes) -> BlobCipher:
    """Derive the key (slow) and check it; :class:`WrongPassphraseError` if it is not it."""
    try:
        cipher = BlobCipher(derive_key(passphrase, header.params), header.params)
    except ValueError as exc:
        raise WrongPassphraseError(f"cannot use this passphrase ({exc})") from None
    check(header, cipher)
    return cipher


def check(header: EncryptionHeader, cipher: BlobCipher) -> None:
    if not cipher.check_verifier(header.verifier):
        raise WrongPassphraseError("wrong passphrase for this home")


def store_header(path: Path) -> EncryptionHeader | None:
    """Read-only: the encryption header of the store at *path* (``None``: not encrypted
    or no store yet). Never writes to the file."""
    if schema.inspect_store_file(path) is None:
        return None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return read_header(conn, str(path))
    except sqlite3.Error as exc:
        raise CorruptStoreError(f"{path}: cannot read ({exc})") from None
    finally:
        conn.close()


# --------------------------------------------------------------------------- conversion


def encrypt_store_file(path: Path, cipher: BlobCipher, header: EncryptionHeader) -> int:
    """Replace the plain store at *path* by an encrypted copy; return the blobs sealed.

    The copy is built under a temporary name, every row is read back, opened
    and compared with the original, and only then renamed over *path*. The
    old file's bytes are overwritten with zeros before its last link goes (on
    copy-on-write or journalling filesystems older blocks may survive: encrypt
    at ``init`` when it matters). The caller makes sure no other process has
    the store open.
    """
    if store_header(path) is not None:
        raise EncryptionError(f"{path}: already encrypted")
    tmp = path.with_name(f".{path.name}.encrypting-{os.getpid()}")
    for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        leftover.unlink(missing_ok=True)
    src = sqlite3.connect(path, isolation_level=None)
    try:
        version = int(src.execute("PRAGMA user_version").fetchone()[0])
        if version < schema.SCHEMA_VERSION:
            schema.migrate(src, version)
        src.execute("BEGIN IMMEDIATE")  # no other writer while we copy
        created = src.execute("SELECT value FROM meta WHERE key='created_at'").fetchone()
        schema.create_store_file(
            tmp, created_at=str(created[0]) if created else "",
            meta={META_KEY: header.to_text()}, rename=False,
        )
        sealed = _copy_sealed(src, tmp, cipher)
        _verify_copy(src, tmp, cipher)
        src.execute("ROLLBACK")
    except BaseException:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
        raise
    finally:
        src.close()  # checkpoints and removes the plain WAL
    for side in ("-wal", "-shm", "-journal"):
        Path(f"{tmp}{side}").unlink(missing_ok=True)
    old_fd = os.open(path, os.O_RDWR)
    try:
        os.replace(tmp, path)
        for side in ("-wal", "-shm"):
            Path(f"{path}{side}").unlink(missing_ok=True)
        _fsync_dir(path.parent)
        _wipe(old_fd)
    finally:
        os.close(old_fd)
    return sealed


def _copy_sealed(src: sqlite3.Connection, tmp: Path, cipher: BlobCipher) -> int:
    dst = sqlite3.connect(tmp, isolation_level=None)
    sealed = 0
    try:
        dst.execute("BEGIN IMMEDIATE")
        for doc_id, kind, cls, created, snap, snap_seq, compacted in src.execute(
            "SELECT doc_id, kind, sync_class, created_at, snapshot, snapshot_seq, compacted_at"
            " FROM documents"
        ):
            blob = None if snap is None else cipher.seal("snapshot", doc_id, bytes(snap))
            sealed += blob is not None
            dst.execute(
                "INSERT INTO documents(doc_id, kind, sync_class, created_at, snapshot,"
                " snapshot_seq, compacted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (doc_id, kind, cls, created, blob, snap_seq, compacted),
            )
        for seq, doc_id, writer, data in src.execute(
            "SELECT seq, doc_id, writer, data FROM updates ORDER BY seq"
        ):
            dst.execute(
                "INSERT INTO updates(seq, doc_id, writer, data) VALUES (?, ?, ?, ?)",
                (seq, doc_id, writer, cipher.seal("update", doc_id, bytes(data))),
            )
            sealed += 1
        for seq, doc_id, digest, data in src.execute(
            "SELECT seq, doc_id, digest, data FROM envelopes ORDER BY seq"
        ):
            dst.execute(
                "INSERT INTO envelopes(seq, doc_id, digest, data) VALUES (?, ?, ?, ?)",
                (seq, doc_id, digest, cipher.seal("envelope", doc_id, bytes(data))),
            )
            sealed += 1
        dst.executemany(
            "INSERT INTO client_ids(client_id, state, since) VALUES (?, ?, ?)",
            src.execute("SELECT client_id, state, since FROM client_ids").fetchall(),
        )
        # A seq is never reused, even one compaction deleted: carry the counter.
        for table in ("updates", "envelopes"):
            row = src.execute("SELECT seq FROM sqlite_sequence WHERE name=?", (table,)).fetchone()
            if row is not None:
                dst.execute("DELETE FROM sqlite_sequence WHERE name=?", (table,))
                dst.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)",
                            (table, row[0]))
        dst.execute("COMMIT")
        # Rollback-journal mode until it is in place, so no side file is left
        # under the temporary name; the store switches back to WAL when opened.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return sealed


def _verify_copy(src: sqlite3.Connection, tmp: Path, cipher: BlobCipher) -> None:
    dst = sqlite3.connect(f"{tmp.resolve().as_uri()}?mode=ro", uri=True)
    try:
        if dst.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise CorruptStoreError(f"{tmp}: the encrypted copy failed its integrity check")
        query_docs = "SELECT doc_id, kind, sync_class, snapshot FROM documents ORDER BY doc_id"
        for (a_id, a_kind, a_cls, a_snap), (b_id, b_kind, b_cls, b_snap) in _zip_exact(
            src.execute(query_docs), dst.execute(query_docs)
        ):
            same = (a_id, a_kind, a_cls) == (b_id, b_kind, b_cls) and (
                (a_snap is None and b_snap is None)
                or (b_snap is not None and a_snap is not None
                    and cipher.open("snapshot", b_id, bytes(b_snap)) == bytes(a_snap))
            )
            if not same:
                raise CorruptStoreError(f"document {a_id}: the encrypted copy differs; "
                                        "nothing changed")
        query_updates = "SELECT seq, doc_id, data FROM updates ORDER BY seq"
        for (a_seq, a_doc, a_data), (b_seq, b_doc, b_data) in _zip_exact(
            src.execute(query_updates), dst.execute(query_updates)
        ):
            if (a_seq, a_doc) != (b_seq, b_doc) or \
                    cipher.open("update", b_doc, bytes(b_data)) != bytes(a_data):
                raise CorruptStoreError(f"update {a_seq}: the encrypted copy differs; "
                                        "nothing changed")
        query_envelopes = "SELECT seq, doc_id, data FROM envelopes ORDER BY seq"
        for (a_seq, a_doc, a_data), (b_seq, b_doc, b_data) in _zip_exact(
            src.execute(query_envelopes), dst.execute(query_envelopes)
        ):
            if (a_seq, a_doc) != (b_seq, b_doc) or \
                    cipher.open("envelope", b_doc, bytes(b_data)) != bytes(a_data):
                raise CorruptStoreError(f"envelope {a_seq}: the encrypted copy differs; "
                                        "nothing changed")
    finally:
        dst.close()


def _zip_exact(a: Any, b: Any) -> Any:
    sentinel = object()
    for x, y in _longest(a, b, sentinel):
        if x is sentinel or y is sentinel:
            raise CorruptStoreError("the encrypted copy has a different number of rows; "
                                    "nothing changed")
        yield x, y


def _longest(a: Any, b: Any, fill: object) -> Any:
    return zip_longest(a, b, fillvalue=fill)


def _wipe(fd: int) -> None:
    size = os.fstat(fd).st_size
    zeros = b"\x00" * (1024 * 1024)
    os.lseek(fd, 0, os.SEEK_SET)
    left = size
    while left > 0:
        left -= os.write(fd, zeros[: min(left, len(zeros))])
    os.fsync(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
