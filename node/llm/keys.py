"""The person's own API key: from the environment or a key file only they can read.

The key is read when a remote call is made and handed to litellm; it is never
written to a document, an export, a log line or a sync message, and error
lines are redacted (``LLMTarget.redact``). The config names the key *file*,
never the key.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import MirrorError

ENV_KEY = "MIRROR_LLM_API_KEY"
DEFAULT_KEY_FILE = "llm.key"
MAX_KEY_CHARS = 4096


class ApiKeyError(MirrorError):
    """No usable key; the message says how to provide one."""


def key_file_path(home_path: Path, configured: str) -> Path:
    return Path(configured).expanduser() if configured else home_path / DEFAULT_KEY_FILE


def read_key_file(path: Path) -> str:
    """The key in *path*, refused unless the file is a regular file, owned by this
    user and unreadable by anyone else (mode 0600 or stricter)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ApiKeyError(
            f"no API key: set {ENV_KEY} or write the key to {path} (chmod 600)"
        ) from None
    except OSError as exc:
        raise ApiKeyError(f"{path}: cannot read the key file ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise ApiKeyError(f"{path}: the key file is not a regular file")
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ApiKeyError(f"{path}: the key file belongs to another user")
    if st.st_mode & 0o077:
        raise ApiKeyError(
            f"{path}: the key file can be read by others (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run: chmod 600 {path}"
        )
    try:
        key = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise ApiKeyError(f"{path}: cannot read the key file") from None
    if not key or len(key) > MAX_KEY_CHARS or any(c.isspace() for c in key):
        raise ApiKeyError(f"{path}: the key file must hold the key alone, on one line")
    return key


def resolve_api_key(home_path: Path, configured_file: str = "") -> str:
    """The key from ``MIRROR_LLM_API_KEY``, else from the key file."""
    env = os.environ.get(ENV_KEY, "").strip()
    if env:
        return env
    return read_key_file(key_file_path(home_path, configured_file))
