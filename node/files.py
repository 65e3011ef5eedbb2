"""Writing files in the home: private (0600), atomic (temporary file + rename), durable.

One implementation for every small file the node keeps (config, keyring, sync
status, store and Commons state, exports): a crash leaves the old file or the
new one, never half of either, and nobody else can read what is written.

Every file in the home is created 0600 and every directory 0700, whatever the
umask; files that others' code creates (the log, the prompt's history) are
created here first. :func:`make_tree_private` takes group and other permissions
off what an older version left.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from crdt.schema import make_private

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def write_private(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Replace *path* with *data* atomically, mode 0600; fsync unless not *durable*."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private_json(path: Path, value: Any, *, indent: int = 1, durable: bool = True) -> None:
    """:func:`write_private` of *value* as JSON (UTF-8, a trailing newline)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False) + "\n"
    write_private(path, text, durable=durable)


def fsync_path(path: Path) -> None:
    """Flush a file (or, for a directory, its entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_private_file(path: Path) -> None:
    """Create *path* empty (0600) if it does not exist, so that a library that then
    opens it for appending (logging, prompt-toolkit's history) finds it private."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)  # the umask may have taken more
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> None:
    """Create *path* (and missing parents) if needed; mode 0700 whatever the umask."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)


def make_tree_private(root: Path) -> None:
    """:func:`make_private` for *root* and everything under it (links not followed)."""
    make_private(root)
    if not root.is_dir() or root.is_symlink():
        return
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in (*dirs, *files):
            make_private(Path(folder, name))
