"""Data commands: import, backup, restore, encrypt — and the passphrase of an encrypted home.

Passphrases come from ``--passphrase-file`` (first line), else ``MIRROR_PASSPHRASE``,
else a prompt on the terminal (asked twice when it is new). A passphrase is
never written anywhere. Argon2id runs in a worker thread.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import trio

from crdt import crypto_at_rest as car

from ..errors import MirrorError, UsageError
from ..home import Home
from ..terminal import unfiltered

if TYPE_CHECKING:
    from ..core import MirrorCore

log = logging.getLogger("mirror.cli")

ENV_PASSPHRASE = "MIRROR_PASSPHRASE"
PROMPT_ATTEMPTS = 3
MAX_PASSPHRASE_FILE_BYTES = 64 * 1024

AddCommand = Callable[..., argparse.ArgumentParser]
HomeHandler = Callable[[Home, argparse.Namespace, TextIO], Awaitable[int]]


# --------------------------------------------------------------------------- passphrases


def _from_file(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PASSPHRASE_FILE_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the passphrase file ({exc.strerror})") from None
    if len(raw) > MAX_PASSPHRASE_FILE_BYTES:
        raise UsageError(f"{path}: too large for a passphrase file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the passphrase file is not UTF-8") from None
    line = text.split("\n", 1)[0].removesuffix("\r")
    if not line:
        raise UsageError(f"{path}: the first line (the passphrase) is empty")
    return line


def given_passphrase(args: argparse.Namespace) -> str | None:
    """The passphrase a script gave, if any."""
    path = getattr(args, "passphrase_file", None)
    if path:
        return _from_file(path)
    env = os.environ.get(ENV_PASSPHRASE)
    if env is not None:
        if not env:
            raise UsageError(f"{ENV_PASSPHRASE} is set but empty")
        return env
    return None


def _can_prompt() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _ask(prompt: str) -> str:
    return getpass.getpass(prompt)


async def passphrase(args: argparse.Namespace, *, new: bool, purpose: str) -> str:
    """A passphrase from the script or the person; *new* ones are asked twice."""
    given = given_passphrase(args)
    if given is not None:
        return given
    if not _can_prompt():
        raise UsageError(f"{purpose} needs a passphrase: set {ENV_PASSPHRASE} or pass "
                         "--passphrase-file")
    first = await trio.to_thread.run_sync(_ask, f"Passphrase for {purpose}: ")
    if not first:
        raise UsageError("the passphrase is empty")
    if new:
        again = await trio.to_thread.run_sync(_ask, "Same passphrase again: ")
        if again != first:
            raise UsageError("the two passphrases differ; nothing changed")
    return first


async def unlock_home(home: Home, args: argparse.Namespace) -> car.BlobCipher | None:
    """Before the core opens: create an encrypted store for ``init --passphrase``, or
    unlock an encrypted one (asking up to three times on a terminal)."""
    header = await trio.to_thread.run_sync(car.store_header, home.db_path)
    if getattr(args, "init_passphrase", False) and header is None:
        if home.exists():
            raise UsageError(f"{home.path}: this home is not encrypted; to encrypt it, "
                             "run: mirror encrypt")
        return await _create_encrypted(home, args)
    if header is None:
        return None
    given = given_passphrase(args)
    if given is not None:
        return await trio.to_thread.run_sync(car.unlock, header, given)
    if not _can_prompt():
        raise car.PassphraseRequiredError(
            f"{home.path}: this home is encrypted; set {ENV_PASSPHRASE} or pass "
            "--passphrase-file"
        )
    for attempt in range(PROMPT_ATTEMPTS):
        typed = await trio.to_thread.run_sync(_ask, "Passphrase: ")
        try:
            return await trio.to_thread.run_sync(car.unlock, header, typed)
        except car.WrongPassphraseError:
            if attempt == PROMPT_ATTEMPTS - 1:
                raise
            print("wrong passphrase; try again", file=sys.stderr)
    raise AssertionError("unreachable")


async def _create_encrypted(home: Home, args: argparse.Namespace) -> car.BlobCipher:
    from crdt import schema
    from crdt.values import format_timestamp, utc_now

    secret = await passphrase(args, new=True, purpose="this home")
    home.ensure()
    header, cipher = await trio.to_thread.run_sync(car.new_encryption, secret)
    await trio.to_thread.run_sync(lambda: schema.create_store_file(
        home.db_path, created_at=format_timestamp(utc_now()),
        meta={car.META_KEY: header.to_text()},
    ))
    return cipher


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


async def cmd_import(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from crdt.import_plan import ImportFileError
    from crdt.importers import apply_plan, read_source

    path = args.path
    zone = datetime.now().astimezone().tzinfo
    try:
        plan = await trio.to_thread.run_sync(
            lambda: read_source(Path(path).expanduser(), args.format, default_tz=zone or UTC)
        )
        report = await apply_plan(
            core.store, plan, share_class=core.journal.share_class,
            private=args.private, dry_run=args.dry_run,
        )
    except ImportFileError as exc:
        log.info("import of %s refused: %s", path, exc)
        raise MirrorError(f"nothing imported: {exc}") from None
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
    from ..backup import write_backup

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
    from ..backup import restore_backup

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
    from ..backup import home_in_use
    from ..identity import load_keyring

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
    from crdt.importers import FORMATS

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
