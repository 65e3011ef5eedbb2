"""Data commands: import, backup, restore, encrypt (passphrases: :mod:`.passphrase`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import trio

from crdt import crypto_at_rest as car
from crdt.importers import FORMATS

from ..app import Mirror
from ..backup import home_in_use, restore_backup, write_backup
from ..errors import MirrorError, UsageError
from ..home import Home
from ..identity import load_keyring
from ..terminal import unfiltered
from .passphrase import ENV_PASSPHRASE, passphrase

log = logging.getLogger("mirror.cli")


AddCommand = Callable[..., argparse.ArgumentParser]
HomeHandler = Callable[[Home, argparse.Namespace, TextIO], Awaitable[int]]


# --------------------------------------------------------------------------- passphrases



# --------------------------------------------------------------------------- progress


class ProgressLine:
    """``label: 42% (12.0 of 28.5 MiB)`` on stderr, rewritten in place; only when
    stderr is a terminal or ``--progress`` asked for it."""

    def __init__(self, label: str, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        percent = min(100, done * 100 // total)
        if percent == self._last:
            return
        self._last = percent
        mib = 1024 * 1024
        # The carriage return is ours (the label and figures too): written unfiltered.
        stream = unfiltered(self.stream)
        stream.write(f"\r{self.label}: {percent}% ({done / mib:.1f} of {total / mib:.1f} MiB)")
        stream.flush()

    def finish(self) -> None:
        if self.enabled and self._last >= 0:
            self.stream.write("\n")
            self.stream.flush()


def _progress(args: argparse.Namespace, label: str) -> ProgressLine:
    enabled = bool(getattr(args, "progress", False)) or (
        sys.stderr is not None and sys.stderr.isatty()
    )
    return ProgressLine(label, enabled)


# --------------------------------------------------------------------------- import


async def cmd_import(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    report = await mirror.import_file(Path(args.path), fmt=args.format, private=args.private,
                                      dry_run=args.dry_run)
    if args.json:
        json.dump(report.as_json(), out, ensure_ascii=False, indent=1)
        out.write("\n")
        return 0
    verb = "would import" if report.dry_run else "imported"
    noun = "reflection" if report.imported == 1 else "reflections"
    line = f"{verb} {report.imported} {noun} ({report.format})"
    extras = []
    if report.documents:
        extras.append(f"{report.documents} documents merged")
    if report.already_present:
        extras.append(f"{report.already_present} already here")
    if report.skipped:
        extras.append(f"{len(report.skipped)} skipped or partly imported (below)")
    print(line + (f"; {', '.join(extras)}" if extras else ""), file=out)
    for s in report.skipped:
        print(f"  skipped {s.where}: {s.reason}", file=out)
    if report.imported and not report.dry_run and report.format != "mirror":
        print("run `mirror reindex` to let the engine learn from them", file=out)
    return 0


# --------------------------------------------------------------------------- backup / restore


async def cmd_backup(home: Home, args: argparse.Namespace, out: TextIO) -> int:
    target = await trio.to_thread.run_sync(_backup_target, home, args.path, args.force)
    secret = await passphrase(args, new=True, purpose="the backup")
    progress = _progress(args, "backup")
    try:
        summary = await trio.to_thread.run_sync(
            lambda: write_backup(home, target, secret, progress=progress)
        )
    finally:
        progress.finish()
    print(f"backed up {summary.files} files ({summary.plain_bytes} bytes) to {target}", file=out)
    return 0


def _backup_target(home: Home, raw: str, force: bool) -> Path:
    target = Path(raw).expanduser().absolute()
    if not home.exists():
        raise MirrorError(f"{home.path}: no Mirror home to back up")
    if not target.parent.is_dir():
        raise UsageError(f"{target.parent}: no such directory")
    if target.is_dir():
        raise UsageError(f"{target}: is a directory (a backup is one file)")
    if target.exists() and not force:
        raise UsageError(f"{target}: exists; pass --force to replace it")
    return target


def _restore_source(raw: str) -> Path:
    source = Path(raw).expanduser()
    if not source.is_file():
        raise UsageError(f"{source}: no such file")
    return source


async def cmd_restore(home: Home, args: argparse.Namespace, out: TextIO) -> int:
    source = await trio.to_thread.run_sync(_restore_source, args.path)
    secret = await passphrase(args, new=False, purpose="the backup")
    progress = _progress(args, "restore")
    try:
        names = await trio.to_thread.run_sync(
            lambda: restore_backup(source, home, secret, force=args.force, progress=progress)
        )
    finally:
        progress.finish()
    print(f"restored {len(names)} files into {home.path}", file=out)
    if await trio.to_thread.run_sync(car.store_header, home.db_path) is not None:
        print("this home is encrypted: it opens with its own passphrase", file=out)
    return 0


# --------------------------------------------------------------------------- encrypt


async def cmd_encrypt(home: Home, args: argparse.Namespace, out: TextIO) -> int:
    if not home.exists():
        raise MirrorError(f"{home.path}: no Mirror home here (to start an encrypted one: "
                          "mirror init --passphrase)")
    if await trio.to_thread.run_sync(car.store_header, home.db_path) is not None:
        raise MirrorError(f"{home.path}: already encrypted")
    if home_in_use(home):
        raise MirrorError(f"{home.path}: a Mirror process is using this home; close it first")
    secret = await passphrase(args, new=True, purpose="this home")
    header, cipher = await trio.to_thread.run_sync(car.new_encryption, secret)
    sealed = await trio.to_thread.run_sync(car.encrypt_store_file, home.db_path, cipher, header)
    if (home.path / "keyring.json").exists():
        await trio.to_thread.run_sync(lambda: load_keyring(
            home.path, create=False, sealing_key=cipher.purpose_key("keyring")
        ))
    print(f"encrypted {sealed} stored blobs; from now on this home asks for its passphrase",
          file=out)
    return 0


# --------------------------------------------------------------------------- registration


def _passphrase_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--passphrase-file", metavar="FILE", default=argparse.SUPPRESS,
                   help=f"read the passphrase from the first line of FILE "
                   f"(or set {ENV_PASSPHRASE})")


def add_commands(add: AddCommand) -> None:
    p = add("import", cmd_import, "import reflections: Day One (zip or JSON), jrnl JSON, "
            "a folder of Markdown files, or a Mirror JSON export")
    p.add_argument("path", help="the file or folder to import")
    p.add_argument("--format", choices=("auto", *FORMATS), default="auto",
                   help="what PATH is (default: recognise it)")
    p.add_argument("--private", action="store_true",
                   help="keep the imported reflections on this device whatever is shared")
    p.add_argument("--dry-run", action="store_true", help="only report what would happen")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add("backup", cmd_backup, "write an encrypted backup of this home to one file")
    p.set_defaults(home_handler=cmd_backup)
    p.add_argument("path", help="the backup file to write")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.add_argument("--progress", action="store_true", help="show progress even when not "
                   "on a terminal")
    _passphrase_options(p)

    p = add("restore", cmd_restore, "restore an encrypted backup into a new or empty home "
            "(the home given by --home or MIRROR_HOME)")
    p.set_defaults(home_handler=cmd_restore)
    p.add_argument("path", help="the backup file")
    p.add_argument("--force", action="store_true", help="replace the store of a home that "
                   "has one (its files are kept in replaced-<time>/)")
    p.add_argument("--progress", action="store_true", help="show progress even when not "
                   "on a terminal")
    _passphrase_options(p)

    p = add("encrypt", cmd_encrypt, "encrypt this home's store at rest with a passphrase")
    p.set_defaults(home_handler=cmd_encrypt)
    _passphrase_options(p)
