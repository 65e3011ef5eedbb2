"""``mirror-release``: the maintainer's side of updates — make a key, sign a release.

::

    mirror-release keygen --fork NAME --out KEYFILE      # KEYFILE (secret, 0600) + KEYFILE.pub
    mirror-release sign --key KEYFILE --wheel WHEEL --notes TEXT [--version V] [--out FILE]
    mirror-release show FILE                             # fields, and whether it is self-consistent

It needs no Mirror home and opens no connection. A key file is
``{"format": "mirror-release-key/1", "fork": NAME, "seed": HEX, "key": "ed25519:HEX"}``;
the ``.pub`` file is one line, ``ed25519:HEX NAME``, which is what people pass
to ``mirror update keys add``. See docs/updates.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import nacl.exceptions
import nacl.signing

from node.errors import MirrorError, UsageError
from node.updates.manifest import (
    MAX_WHEEL_BYTES,
    Manifest,
    canonical_bytes,
    format_public_key,
    parse_signed_manifest,
    release_date,
    sign_manifest,
    validate_fork,
)

KEY_FORMAT = "mirror-release-key/1"
DEFAULT_MANIFEST_NAME = "release-manifest.json"


@dataclass(frozen=True)
class ReleaseKey:
    fork: str
    signing_key: nacl.signing.SigningKey

    @property
    def public(self) -> str:
        return format_public_key(bytes(self.signing_key.verify_key))


def _write_new(path: Path, text: str, mode: int, *, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise UsageError(f"{path}: exists; not overwriting a key (pass --force)") from None
    except OSError as exc:
        raise MirrorError(f"{path}: cannot write ({exc.strerror})") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)


def generate_key(
    fork: str, out: Path, *, force: bool = False, seed: bytes | None = None
) -> ReleaseKey:
    """Write a new signing key to *out* (0600) and its public half to *out*.pub."""
    validate_fork(fork)
    signing_key = nacl.signing.SigningKey(seed) if seed else nacl.signing.SigningKey.generate()
    key = ReleaseKey(fork, signing_key)
    data = {"format": KEY_FORMAT, "fork": fork, "seed": bytes(signing_key).hex(),
            "key": key.public}
    _write_new(out, json.dumps(data, indent=2) + "\n", 0o600, force=force)
    _write_new(out.with_name(out.name + ".pub"), f"{key.public} {fork}\n", 0o644, force=force)
    return key


def load_key(path: Path) -> ReleaseKey:
    try:
        st = path.stat()
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such key file (make one: mirror-release keygen)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MirrorError(f"{path}: cannot read ({getattr(exc, 'strerror', exc)})") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MirrorError(f"{path}: others may read this signing key; chmod 600 {path} "
                          "(and consider it leaked if they did)")
    try:
        data = json.loads(raw)
        if data["format"] != KEY_FORMAT:
            raise ValueError("format")
        signing_key = nacl.signing.SigningKey(bytes.fromhex(data["seed"]))
        key = ReleaseKey(str(data["fork"]), signing_key)
        if data.get("key", key.public) != key.public:
            raise ValueError("key")
    except (ValueError, KeyError, TypeError, nacl.exceptions.CryptoError):
        raise MirrorError(f"{path}: not a mirror-release key file") from None
    return key


def sign_release(
    key: ReleaseKey,
    wheel: Path,
    *,
    notes: str,
    version: str | None = None,
    date: str | None = None,
) -> str:
    """The signed manifest (file text) for *wheel*."""

    try:
        size = wheel.stat().st_size
        if size > MAX_WHEEL_BYTES:
            raise UsageError(f"{wheel}: larger than {MAX_WHEEL_BYTES} bytes")
        digest = hashlib.sha256()
        with wheel.open("rb") as fh:
            while chunk := fh.read(1 << 16):
                digest.update(chunk)
    except FileNotFoundError:
        raise UsageError(f"{wheel}: no such file") from None
    except OSError as exc:
        raise MirrorError(f"{wheel}: cannot read ({exc.strerror})") from None
    from_name = wheel.name.split("-")[1] if wheel.name.count("-") >= 4 else None
    version = version or from_name
    if not version:
        raise UsageError(f"{wheel.name}: not a wheel file name; pass --version")
    manifest = Manifest(
        fork=key.fork, key=key.public, version=version, wheel=wheel.name,
        sha256=digest.hexdigest(), size=size, date=date or release_date(), notes=notes,
    )
    return sign_manifest(manifest, key.signing_key).dumps()


def _parse_date(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"cannot read the date {text!r} (use e.g. 2026-05-01T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return release_date(moment)


def cmd_keygen(args: argparse.Namespace) -> int:
    out = Path(args.out).expanduser()
    key = generate_key(args.fork, out, force=args.force)
    print(f"signing key: {out} (keep it secret, keep a backup)")
    print(f"public key:  {out}.pub — publish it; people follow your fork with:")
    print(f"  mirror update keys add {key.public} --label {json.dumps(args.fork)}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    key = load_key(Path(args.key).expanduser())
    wheel = Path(args.wheel).expanduser()
    if args.notes_file:
        try:
            notes = Path(args.notes_file).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MirrorError(f"{args.notes_file}: cannot read ({exc})") from None
    else:
        notes = args.notes or ""
    date = _parse_date(args.date) if args.date else None
    text = sign_release(key, wheel, notes=notes, version=args.version, date=date)
    out = Path(args.out).expanduser() if args.out else wheel.parent / DEFAULT_MANIFEST_NAME
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MirrorError(f"{out}: cannot write ({exc.strerror})") from None
    manifest = parse_signed_manifest(text.encode()).manifest
    print(f"signed {manifest.wheel} ({manifest.version}, sha256 {manifest.sha256[:16]}…) "
          f"as fork {manifest.fork!r}: {out}")
    print("publish the wheel and this file side by side")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    path = Path(args.manifest).expanduser()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MirrorError(f"{path}: cannot read ({exc.strerror})") from None
    signed = parse_signed_manifest(raw)
    m = signed.manifest
    verify_key = nacl.signing.VerifyKey(bytes.fromhex(m.key.split(":", 1)[1]))
    try:
        verify_key.verify(canonical_bytes(m), signed.signature)
        state = ("signature matches the key it names "
                 "(whether to trust that key is each person's choice)")
    except nacl.exceptions.CryptoError:
        state = "BAD SIGNATURE: the manifest was changed after signing"
    for field in ("fork", "key", "version", "wheel", "sha256", "size", "date"):
        print(f"{field}: {getattr(m, field)}")
    print(f"notes: {m.notes}")
    print(state)
    return 0 if state.startswith("signature") else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirror-release", description="Sign Mirror releases for the fork you maintain."
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    p = sub.add_parser("keygen", help="make a signing key for a fork")
    p.add_argument("--fork", required=True, help="the fork's name, shown to people who follow it")
    p.add_argument("--out", required=True, metavar="KEYFILE", help="where to write the secret key")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    p.set_defaults(handler=cmd_keygen)
    p = sub.add_parser("sign", help="write the signed manifest for a wheel")
    p.add_argument("--key", required=True, metavar="KEYFILE")
    p.add_argument("--wheel", required=True, metavar="WHEEL")
    p.add_argument("--version", help="the release's version (default: from the wheel's name)")
    notes = p.add_mutually_exclusive_group(required=True)
    notes.add_argument("--notes", help="release notes")
    notes.add_argument("--notes-file", metavar="FILE", help="release notes from a file")
    p.add_argument("--date", help="release date (default: now), e.g. 2026-05-01T12:00:00Z")
    p.add_argument("--out", metavar="FILE",
                   help=f"where to write it (default: {DEFAULT_MANIFEST_NAME} beside the wheel)")
    p.set_defaults(handler=cmd_sign)
    p = sub.add_parser("show", help="print a signed manifest and check its signature")
    p.add_argument("manifest", metavar="FILE")
    p.set_defaults(handler=cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.handler(args)
    except MirrorError as exc:
        print(f"mirror-release: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
