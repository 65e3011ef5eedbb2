"""The node's home: one directory holding everything of this device.

Layout::

    config.json        mode flags and settings (node.config)
    mirror.db          the document store (+ -wal, -shm, .locks/)
    keyring.json       device key and group secrets (0600; sealed when encrypted)
    logs/mirror.log    tracebacks and diagnostics; never reflection text
    history            REPL command history (commands only)
    prompts/           optional overrides of the engine's prompt files
    drafts/            `mirror edit`'s draft while the editor is open (node.drafts)
    sync-status.json   what a running `mirror serve` last saw
    blind-stores.json  configured blind stores and their cursors
    authors.json       Commons author keys (0600)
    trusted-keys.json  release keys this device trusts; updates/ the last verified release

Chosen by ``--home``, else ``MIRROR_HOME``, else the platform's user data dir.
Created with mode 0700, every file in it 0600: it holds a person's most private
thoughts.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .config import Config, load_config, save_config
from .errors import HomeError
from .files import ensure_private_file, make_private_dir, make_tree_private

ENV_HOME = "MIRROR_HOME"
DB_NAME = "mirror.db"
# What Mirror keeps in a home (the layout above), for making an older home private
# again: only these are touched, whatever else the directory holds.
MIRROR_ENTRIES = frozenset({
    DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", f"{DB_NAME}.locks",
    "config.json", "keyring.json", "logs", "history", "prompts", "drafts", "updates",
    "sync-status.json", "blind-stores.json", "authors.json", "commons.json",
    "trusted-keys.json", "llm.key",
})
MIRROR_ENTRY_PREFIXES = ("replaced-", ".backup-snapshot-", ".restore-", ".mirror.db")


def is_mirror_entry(name: str) -> bool:
    """Whether *name*, in a home, is one of Mirror's files or their temporary forms."""
    if name in MIRROR_ENTRIES or name.startswith(MIRROR_ENTRY_PREFIXES):
        return True
    return name.startswith(".") and name[1:].split(".tmp-", 1)[0] in MIRROR_ENTRIES


@dataclass(frozen=True)
class Home:
    path: Path

    @classmethod
    def resolve(cls, explicit: str | os.PathLike[str] | None = None) -> Home:
        if explicit:
            return cls(Path(explicit).expanduser().absolute())
        env = os.environ.get(ENV_HOME)
        if env:
            return cls(Path(env).expanduser().absolute())
        return cls(Path(platformdirs.user_data_dir("mirror", appauthor=False)))

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def log_path(self) -> Path:
        return self.path / "logs" / "mirror.log"

    @property
    def history_path(self) -> Path:
        return self.path / "history"

    @property
    def prompts_dir(self) -> Path:
        return self.path / "prompts"

    def exists(self) -> bool:
        return self.db_path.exists()

    def ensure(self) -> None:
        """Create the home (0700) if needed; refuse a path that is not a directory.

        A home that exists with wider permissions (made by hand, or by a version
        that created files with the umask's mode) is made private: 0700 for it
        and its directories, group and other permissions off every file."""
        if self.path.exists() and not self.path.is_dir():
            raise HomeError(f"{self.path}: exists and is not a directory")
        try:
            make_private_dir(self.path)
            for entry in os.scandir(self.path):  # a few dozen: well under a millisecond
                if is_mirror_entry(entry.name):
                    make_tree_private(Path(entry.path))
            make_private_dir(self.path / "logs")
        except OSError as exc:
            raise HomeError(f"{self.path}: cannot create the home ({exc.strerror})") from None
        if not self.config_path.exists():
            save_config(self.config_path, Config())

    def load_config(self) -> Config:
        return load_config(self.config_path)

    def save_config(self, config: Config) -> None:
        save_config(self.config_path, config)


class HomeLogHandler(logging.handlers.RotatingFileHandler):
    """The home's rotated log file, opened at the first record — and only if the
    home exists by then: a command that fails before creating a home (a restore
    with the wrong passphrase, say) leaves no directory behind."""

    def __init__(self, home: Home) -> None:
        super().__init__(
            home.log_path, maxBytes=1_000_000, backupCount=3, encoding="utf-8", delay=True
        )
        self.home = home

    def emit(self, record: logging.LogRecord) -> None:
        if self.stream is None:  # not opened yet
            if not self.home.path.is_dir():
                return
            try:
                make_private_dir(self.home.log_path.parent)
            except OSError:
                return
        super().emit(record)

    def _open(self) -> Any:
        # logging opens (and after a rollover creates) the file with the umask's mode
        ensure_private_file(Path(self.baseFilename))
        return super()._open()


def setup_logging(home: Home, *, verbose: bool = False) -> None:
    """Send diagnostics to the home's log file (rotated); nothing to the terminal."""
    root = logging.getLogger("mirror")
    if any(getattr(h, "_mirror_home", None) == str(home.path) for h in root.handlers):
        return
    handler: logging.Handler = HomeLogHandler(home)
    handler._mirror_home = str(home.path)  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False
