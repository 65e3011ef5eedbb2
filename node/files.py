"""Writing files in the home: private (0600), atomic (temporary file + rename), durable.

One implementation for every small file the node keeps (config, keyring, sync
status, store and Commons state, exports): a crash leaves the old file or the
new one, never half of either, and nobody else can read what is written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_private(path: Path, data: str | bytes, *, durable: bool = True) -> None:
    """Replace *path* with *data* atomically, mode 0600; fsync unless not *durable*."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
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
