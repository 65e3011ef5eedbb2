"""Encrypted backup and restore of a whole home, in one file of any size.

File format (all integers big-endian)::

    magic      8 bytes   b"MIRRORBK"
    hlen       4 bytes   length of the header
    header     hlen      JSON: format, version, kdf {alg, opslimit, memlimit, salt},
                         chunk_bytes, check, created_at
    ss_header  24 bytes  libsodium secretstream header
    frames     …         each: length (4 bytes) ‖ secretstream ciphertext of one chunk

Theory of operation: Argon2id (parameters and salt in the header, so restore
reads them) turns the passphrase into a key; a keyed BLAKE2b of it (``check``)
tells a wrong passphrase from a damaged file. The plaintext — a sequence of
records ``"F" ‖ name length (2) ‖ name ‖ size (8) ‖ bytes``, then ``"E"`` — is cut
into chunks of ``chunk_bytes`` and pushed through XChaCha20-Poly1305
secretstream with the magic and header as associated data of every chunk. The
last chunk carries the FINAL tag: a truncated file has none, a reordered,
dropped or altered chunk fails authentication, and bytes after it are refused.

Restore writes into a temporary directory inside the home, checks every
chunk, the record structure and the restored store (SQLite's own check and
Mirror's schema), and only then moves the files into place, the store last.
A failure at any point removes the temporary directory: nothing changes.

What is backed up: the store (a consistent SQLite snapshot, taken while other
processes may be writing), ``config.json``, ``keyring.json`` (sealed if the home
is encrypted at rest) and ``prompts/``. Not the log, the REPL history or lock
files. A restored home is the same device (same keys); its pycrdt client ids
are retired so it never reuses one the original may still be using.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import nacl.bindings as sodium
import nacl.exceptions

from crdt import StoreError, schema
from crdt.crypto_at_rest import KdfParams, derive_key, new_kdf_params, purpose_key
from crdt.values import format_timestamp, utc_now

from .errors import MirrorError
from .files import fsync_path
from .home import Home

MAGIC = b"MIRRORBK"
FORMAT = "mirror-backup"
VERSION = 1
BACKUP_PROFILE = "moderate"
CHUNK_BYTES = 1024 * 1024
MAX_CHUNK_BYTES = 16 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_NAME_BYTES = 1024
MAX_FILES = 100_000
ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
SS_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
TOP_LEVEL_FILES = ("mirror.db", "config.json", "keyring.json")

Progress = Callable[[int, int], None]


class BackupError(MirrorError):
    """The backup cannot be made or read; nothing was changed."""


@dataclass(frozen=True)
class BackupSummary:
    files: int
    plain_bytes: int
    file_bytes: int


# --------------------------------------------------------------------------- backup


def _backup_key(passphrase: str, params: KdfParams) -> tuple[bytes, str]:
    try:
        master = derive_key(passphrase, params)
    except ValueError as exc:
        raise BackupError(f"cannot use this passphrase ({exc})") from None
    key = purpose_key(master, "backup")
    check = hashlib.blake2b(b"", key=master, digest_size=16, person=b"mirror/bk-check").hexdigest()
    return key, check


def _snapshot_store(db: Path, dest: Path) -> None:
    """A consistent copy of the store, whatever other processes are writing."""
    if schema.inspect_store_file(db) is None:
        raise BackupError(f"{db}: no Mirror store to back up")
    src = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    schema.create_private_file(dest)  # the plaintext copy waits in the home: 0600
    out = sqlite3.connect(dest)
    try:
        src.backup(out)
        out.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as exc:
        raise BackupError(f"{db}: cannot read the store ({exc})") from None
    finally:
        out.close()
        src.close()


def _home_files(home: Home, snapshot: Path) -> list[tuple[str, Path]]:
    files = [("mirror.db", snapshot)]
    for name in ("config.json", "keyring.json"):
        if (home.path / name).is_file():
            files.append((name, home.path / name))
    prompts = home.prompts_dir
    if prompts.is_dir():
        for p in sorted(prompts.rglob("*")):
            if p.is_file() and not p.is_symlink():
                files.append((p.relative_to(home.path).as_posix(), p))
    return files


class _Pusher:
    """Buffers plaintext and writes it as length-prefixed secretstream frames."""

    def __init__(self, out: BinaryIO, key: bytes, ad: bytes, chunk: int) -> None:
        self._out = out
        self._ad = ad
        self._chunk = chunk
        self._buf = bytearray()
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        out.write(sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, key))
        self.written = SS_HEADER_BYTES

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) > self._chunk:  # keep at least one byte for the final chunk
            self._push(bytes(self._buf[: self._chunk]), TAG_MESSAGE)
            del self._buf[: self._chunk]

    def close(self) -> None:
        self._push(bytes(self._buf), TAG_FINAL)
        self._buf.clear()

    def _push(self, data: bytes, tag: int) -> None:
        frame = sodium.crypto_secretstream_xchacha20poly1305_push(
            self._state, data, self._ad, tag
        )
        self._out.write(struct.pack(">I", len(frame)) + frame)
        self.written += 4 + len(frame)


def write_backup(
    home: Home,
    target: Path,
    passphrase: str,
    *,
    progress: Progress | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> BackupSummary:
    """Write an encrypted backup of *home* to *target* (atomically: temp file, rename)."""
    params = new_kdf_params(BACKUP_PROFILE)
    key, check = _backup_key(passphrase, params)
    header = json.dumps({
        "format": FORMAT, "version": VERSION, "kdf": params.to_json(),
        "chunk_bytes": chunk_bytes, "check": check, "created_at": format_timestamp(utc_now()),
    }, sort_keys=True).encode("utf-8")
    prefix = MAGIC + struct.pack(">I", len(header)) + header
    snapshot = home.path / f".backup-snapshot-{os.getpid()}.db"
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        snapshot.unlink(missing_ok=True)
        _snapshot_store(home.db_path, snapshot)
        files = _home_files(home, snapshot)
        total = sum(p.stat().st_size for _, p in files)
        done = 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(prefix)
            pusher = _Pusher(out, key, prefix, chunk_bytes)
            for name, path in files:
                size = path.stat().st_size
                raw = name.encode("utf-8")
                pusher.write(b"F" + struct.pack(">H", len(raw)) + raw + struct.pack(">Q", size))
                with path.open("rb") as fh:
                    left = size
                    while left > 0:
                        data = fh.read(min(chunk_bytes, left))
                        if not data:
                            raise BackupError(f"{path}: changed while being backed up")
                        pusher.write(data)
                        left -= len(data)
                        done += len(data)
                        if progress is not None:
                            progress(done, total)
            pusher.write(b"E")
            pusher.close()
            out.flush()
            os.fsync(out.fileno())
            written = len(prefix) + pusher.written
        os.replace(tmp, target)
    except OSError as exc:
        raise BackupError(f"{exc.filename or target}: cannot write ({exc.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)
        snapshot.unlink(missing_ok=True)
    return BackupSummary(len(files), total, written)


# --------------------------------------------------------------------------- restore


def _read_exact(fh: BinaryIO, n: int, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise BackupError(f"the backup is truncated ({what} incomplete)")
    return data


def read_header(fh: BinaryIO) -> tuple[bytes, KdfParams, int, str]:
    """The authenticated prefix, KDF parameters, chunk size and check of a backup."""
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        raise BackupError("not a Mirror backup")
    (hlen,) = struct.unpack(">I", _read_exact(fh, 4, "header"))
    if hlen > MAX_HEADER_BYTES:
        raise BackupError("damaged backup (header too large)")
    raw = _read_exact(fh, hlen, "header")
    try:
        header = json.loads(raw)
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError("not a backup header")
        if header.get("version") != VERSION:
            raise ValueError(f"unknown version {header.get('version')!r}")
        params = KdfParams.from_json(header.get("kdf"))
        chunk = header.get("chunk_bytes")
        if not isinstance(chunk, int) or isinstance(chunk, bool) or \
                not 1 <= chunk <= MAX_CHUNK_BYTES:
            raise ValueError("bad chunk size")
        check = header.get("check")
        if not isinstance(check, str):
            raise ValueError("no check value")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"damaged backup header ({exc})") from None
    return MAGIC + struct.pack(">I", hlen) + raw, params, chunk, check


def _plaintext_chunks(fh: BinaryIO, key: bytes, ad: bytes, chunk: int) -> Iterator[bytes]:
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(
            state, _read_exact(fh, SS_HEADER_BYTES, "stream header"), key
        )
    except (ValueError, nacl.exceptions.CryptoError):
        raise BackupError("damaged backup (stream header)") from None
    index = 0
    while True:
        raw_len = fh.read(4)
        if len(raw_len) < 4:
            raise BackupError("the backup is truncated (its end is missing)")
        (length,) = struct.unpack(">I", raw_len)
        if not ABYTES <= length <= chunk + ABYTES:
            raise BackupError(f"damaged backup (chunk {index} has an impossible size)")
        frame = _read_exact(fh, length, f"chunk {index}")
        try:
            data, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, frame, ad)
        except (ValueError, nacl.exceptions.CryptoError):
            raise BackupError(
                f"damaged or altered backup (chunk {index} fails authentication)"
            ) from None
        yield bytes(data)
        index += 1
        if tag == TAG_FINAL:
            if fh.read(1):
                raise BackupError("damaged backup (data after its end)")
            return
        if tag != TAG_MESSAGE:
            raise BackupError(f"damaged backup (chunk {index - 1} has an unknown tag)")


class _RecordReader:
    """Parses the record stream incrementally into files under *root*."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.buf = bytearray()
        self.names: list[str] = []
        self.ended = False
        self._fh: BinaryIO | None = None
        self._left = 0

    def feed(self, data: bytes) -> None:
        self.buf += data
        while self.buf:
            if self.ended:
                raise BackupError("damaged backup (data after the last file)")
            if self._fh is not None:
                take = min(self._left, len(self.buf))
                self._fh.write(self.buf[:take])
                del self.buf[:take]
                self._left -= take
                if self._left == 0:
                    self._close_file()
                continue
            if self.buf[:1] == b"E":
                del self.buf[:1]
                self.ended = True
                continue
            if self.buf[:1] != b"F":
                raise BackupError("damaged backup (unknown record)")
            if len(self.buf) < 3:
                return
            (nlen,) = struct.unpack(">H", self.buf[1:3])
            if nlen == 0 or nlen > MAX_NAME_BYTES:
                raise BackupError("damaged backup (bad file name)")
            if len(self.buf) < 3 + nlen + 8:
                return
            name = self._check_name(bytes(self.buf[3 : 3 + nlen]))
            (size,) = struct.unpack(">Q", self.buf[3 + nlen : 11 + nlen])
            del self.buf[: 11 + nlen]
            self._open_file(name, size)

    def _check_name(self, raw: bytes) -> str:
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BackupError("damaged backup (file name is not UTF-8)") from None
        pure = PurePosixPath(name)
        allowed = name in TOP_LEVEL_FILES or (
            len(pure.parts) >= 2 and pure.parts[0] == "prompts"
            and all(p not in ("", ".", "..") and not p.startswith(".") for p in pure.parts)
        )
        if not allowed or "\\" in name or "\x00" in name or pure.is_absolute():
            raise BackupError(f"refusing a backup with an unexpected file {name[:60]!r}")
        if name in self.names:
            raise BackupError(f"damaged backup ({name} appears twice)")
        if len(self.names) >= MAX_FILES:
            raise BackupError("damaged backup (too many files)")
        return name

    def _open_file(self, name: str, size: int) -> None:
        self.names.append(name)
        path = self.root / name
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._fh = os.fdopen(fd, "wb")
        self._left = size
        if size == 0:
            self._close_file()

    def _close_file(self) -> None:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None

    def abandon(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            raise BackupError("damaged backup (a file is cut short)")
        if not self.ended or self.buf:
            raise BackupError("damaged backup (its file list does not end)")
        if "mirror.db" not in self.names:
            raise BackupError("damaged backup (no store in it)")


def home_in_use(home: Home) -> bool:
    """Whether a live Mirror process holds one of the home's client-id locks."""

    locks = Path(f"{home.db_path}.locks")
    if not locks.is_dir():
        return False
    for lock in locks.glob("client-*.lock"):
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
    return False


def restore_backup(
    source: Path,
    home: Home,
    passphrase: str,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> list[str]:
    """Restore *source* into *home*; return the restored file names.

    Refuses a home that already holds a store unless *force*; with *force* the
    previous files are moved to ``replaced-<time>/`` inside the home."""
    if home.exists() and not force:
        raise BackupError(f"{home.path}: already holds a Mirror store; restore into a new "
                          "home (--home) or pass --force to replace it")
    if home.path.exists() and not home.path.is_dir():
        raise BackupError(f"{home.path}: exists and is not a directory")
    if home_in_use(home):
        raise BackupError(f"{home.path}: a Mirror process is using this home; close it first")
    try:
        total = source.stat().st_size
        fh = source.open("rb")
    except OSError as exc:
        raise BackupError(f"{source}: cannot read ({exc.strerror})") from None
    created = not home.path.exists()
    home.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        return _restore_into(home, fh, total, passphrase, progress)
    except BaseException:
        if created:  # a failed restore leaves no trace, not even an empty home
            shutil.rmtree(home.path, ignore_errors=True)
        raise


def _restore_into(
    home: Home, fh: BinaryIO, total: int, passphrase: str, progress: Progress | None
) -> list[str]:
    work = home.path / f".restore-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700)
    reader = _RecordReader(work)
    try:
        with fh:
            ad, params, chunk, check = read_header(fh)
            key, expected = _backup_key(passphrase, params)
            if expected != check:
                raise BackupError("wrong passphrase for this backup")
            for data in _plaintext_chunks(fh, key, ad, chunk):
                reader.feed(data)
                if progress is not None:
                    progress(fh.tell(), total)
            reader.finish()
        _prepare_store(work / "mirror.db")
        _move_into_place(work, home, reader.names)
    except OSError as exc:
        raise BackupError(f"{exc.filename or home.path}: cannot write ({exc.strerror})") \
            from None
    finally:
        reader.abandon()
        shutil.rmtree(work, ignore_errors=True)
    return reader.names


def _prepare_store(db: Path) -> None:
    """Check the restored store and retire its client ids (the original may live on)."""
    try:
        schema.inspect_store_file(db)
    except StoreError as exc:
        raise BackupError(f"the store in the backup is damaged ({exc})") from None
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("UPDATE client_ids SET state='retired', since=?",
                     (format_timestamp(utc_now()),))
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    fsync_path(db)


def _move_into_place(work: Path, home: Home, names: list[str]) -> None:
    stamp = utc_now().strftime("%Y%m%dT%H%M%S")
    aside = home.path / f"replaced-{stamp}"
    old = [home.path / n for n in (*TOP_LEVEL_FILES, "mirror.db-wal", "mirror.db-shm")]
    if home.prompts_dir.exists():
        old.append(home.prompts_dir)
    if home.exists():
        aside.mkdir(mode=0o700, exist_ok=True)
        for path in old:
            if path.exists():
                os.replace(path, aside / path.name)
    # The store goes last: its presence is what makes a home.
    ordered = sorted(names, key=lambda n: n == "mirror.db")
    for name in ordered:
        dest = home.path / name
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if name == "mirror.db":
            for side in ("-wal", "-shm"):
                Path(f"{dest}{side}").unlink(missing_ok=True)
        os.replace(work / name, dest)
    fsync_path(home.path)
