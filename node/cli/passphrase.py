"""Passphrases of an encrypted home or backup, and unlocking the home before it opens.

Passphrases come from ``--passphrase-file`` (first line), else ``MIRROR_PASSPHRASE``,
else a prompt on the terminal (asked twice when it is new). A passphrase is
never written anywhere. Argon2id runs in a worker thread. Every command that
opens a home loads this module: it imports nothing heavy.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

import trio

from crdt import crypto_at_rest as car
from crdt import schema
from crdt.values import format_timestamp, utc_now

from ..errors import UsageError
from ..home import Home

ENV_PASSPHRASE = "MIRROR_PASSPHRASE"
PROMPT_ATTEMPTS = 3
MAX_PASSPHRASE_FILE_BYTES = 64 * 1024


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
    secret = await passphrase(args, new=True, purpose="this home")
    home.ensure()
    header, cipher = await trio.to_thread.run_sync(car.new_encryption, secret)
    await trio.to_thread.run_sync(lambda: schema.create_store_file(
        home.db_path, created_at=format_timestamp(utc_now()),
        meta={car.META_KEY: header.to_text()},
    ))
    return cipher
