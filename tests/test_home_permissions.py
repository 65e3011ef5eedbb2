"""Every file in the home is 0600 and every directory 0700, whatever the umask.

The real ``mirror`` program runs with umask 000 (the widest) in a home that
already exists 0755; after each command every entry of the home is checked.
The store's -wal and -shm files exist only while a store is open, so they are
checked from inside an open core. A home left wide open by an older version is
made private by the next command.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from node.core import open_core
from node.home import Home
from tests.helpers import REPO, mirror_env

PASSPHRASE = "correct horse battery staple"


def loose_entries(home: Path) -> list[str]:
    """Entries of *home* (itself included) that are not 0700 dirs or 0600 files."""
    loose = []
    for path in [home, *home.rglob("*")]:
        mode = path.lstat().st_mode
        want = 0o700 if stat.S_ISDIR(mode) else 0o600
        if stat.S_ISLNK(mode) or stat.S_IMODE(mode) != want:
            loose.append(f"{oct(stat.S_IMODE(mode))} {path.relative_to(home.parent)}")
    return loose


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def mirror(home: Path, *args: str, umask: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True,
                          text=True, env=mirror_env(home, **env), cwd=REPO, timeout=120,
                          check=False, input="", umask=umask)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def test_every_file_the_program_creates_is_private_whatever_the_umask(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    commands: list[tuple[str, ...]] = [
        ("init",),
        ("reflect", "Rent again, and the spreadsheet."),
        ("reflect", "--private", "only for this device"),
        ("--verbose", "list"),
        ("show", "zzzzzzzz"),  # fails: writes the log file
        ("edit", "--text", "x", "zzzzzzzz"),
        ("compact",),
        ("relay", "add", "http://127.0.0.1:9"),
        ("engine", "local", "--model", "tiny"),
        ("engine", "offline"),
        ("update", "keys", "list"),
        ("backup", str(tmp_path / "out.backup")),
        ("encrypt",),
        ("reflect", "after encryption"),
        ("status",),
    ]
    for argv in commands:
        done = mirror(home, *argv, MIRROR_PASSPHRASE=PASSPHRASE)
        assert done.returncode in (0, 1), (argv, done.stderr)
        assert loose_entries(home) == [], argv
    assert (home / "logs" / "mirror.log").exists()
    assert (home / "mirror.db").exists()


async def test_the_store_and_its_wal_and_shm_are_private_while_open(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    with umask(0):
        async with open_core(home) as core:
            await core.reflect("written while the store is open")
            for side in ("mirror.db", "mirror.db-wal", "mirror.db-shm"):
                assert mode_of(home.path / side) == 0o600, side
            assert loose_entries(home.path) == []


def test_a_home_left_wide_open_is_made_private_by_the_next_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert mirror(home, "reflect", "from an older version", umask=0o022).returncode == 0
    for path in [home, *home.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (home / "mirror.db-wal").write_bytes(b"")  # side files an older version left
    (home / "mirror.db-wal").chmod(0o644)
    assert len(loose_entries(home)) > 3
    done = mirror(home, "list", umask=0o022)
    assert done.returncode == 0, done.stderr
    assert loose_entries(home) == []


def test_only_mirrors_own_entries_are_touched_in_the_home(tmp_path: Path) -> None:
    # A person who points MIRROR_HOME at a folder holding other things of theirs.
    home = tmp_path / "home"
    assert mirror(home, "reflect", "mine", umask=0o022).returncode == 0
    (home / "notes.txt").write_text("theirs")
    (home / "notes.txt").chmod(0o644)
    (home / "photos").mkdir(mode=0o755)
    (home / "photos").chmod(0o755)
    (home / "config.json").chmod(0o644)
    assert mirror(home, "list", umask=0o022).returncode == 0
    assert mode_of(home / "config.json") == 0o600
    assert (mode_of(home / "notes.txt"), mode_of(home / "photos")) == (0o644, 0o755)


async def test_the_backups_plaintext_snapshot_is_private_while_it_exists(
    tmp_path: Path,
) -> None:
    from node.backup import _snapshot_store

    home = Home(tmp_path / "home")
    async with open_core(home) as core:
        await core.reflect("in the snapshot")
    with umask(0):
        _snapshot_store(home.db_path, home.path / ".backup-snapshot-1.db")
    assert mode_of(home.path / ".backup-snapshot-1.db") == 0o600


def test_the_prompts_history_is_private(tmp_path: Path) -> None:
    from node.repl.prompt import private_history

    path = tmp_path / "history"
    with umask(0):
        name = private_history(path)
    assert name == str(path) and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("/help\n")
    private_history(path)  # an existing history is kept as it is
    assert path.read_text() == "/help\n"


async def test_a_store_outside_a_home_is_private_too(tmp_path: Path) -> None:
    from crdt import open_store

    with umask(0):
        async with open_store(tmp_path / "elsewhere.db"):
            pass
    assert mode_of(tmp_path / "elsewhere.db") == 0o600
    assert mode_of(tmp_path / "elsewhere.db.locks") == 0o700
