"""Editing a reflection in the person's editor without its text leaving the home.

``mirror edit ID`` (without ``--text``) hands the editor a draft file. The draft
is plaintext, so it is kept where the rest of the person's data is: in
``HOME/drafts/`` (0700), the file 0600 whatever the umask, never in a shared
temporary directory (where another user, a backup of /tmp or a swap of the
tmpfs could see it, and where an encrypted home's protection does not reach).
When the editor is done the draft is overwritten with zeros and removed,
whatever happened; a draft left by a process that was killed meanwhile is
removed by the next edit.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .errors import MirrorError, UsageError
from .files import PRIVATE_FILE_MODE, make_private_dir
from .processes import process_alive

DRAFTS_DIR = "drafts"
DRAFT_PREFIX = "edit-"
DRAFT_SUFFIX = ".txt"


class EditorError(MirrorError):
    """The editor could not be run, or gave up; nothing was changed."""


def editor_command() -> list[str]:
    """``$VISUAL`` or ``$EDITOR`` as an argument list whose program exists and may be
    run; UsageError when unset or unreadable, EditorError when it cannot run."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not editor or not editor.strip():
        raise UsageError("no editor: set $EDITOR, or pass the new text with --text")
    try:
        argv = shlex.split(editor)
    except ValueError as exc:
        raise UsageError(f"cannot read $EDITOR ({exc}); fix it, or pass the text with --text"
                         ) from None
    if not argv:
        raise UsageError("no editor: set $EDITOR, or pass the new text with --text")
    program = argv[0]
    if shutil.which(program) is None:
        exists = os.path.sep in program and os.path.exists(program)
        why = "cannot be run (permission denied)" if exists else "was not found"
        raise EditorError(f"the editor {program!r} {why}; set $EDITOR to an editor, "
                          "or pass the new text with --text")
    return argv


def drafts_dir(home: Path) -> Path:
    return home / DRAFTS_DIR


def draft_path(home: Path, pid: int | None = None) -> Path:
    return drafts_dir(home) / f"{DRAFT_PREFIX}{os.getpid() if pid is None else pid}{DRAFT_SUFFIX}"


def remove_draft(path: Path) -> None:
    """Overwrite *path* with zeros, then remove it (no error if it is gone)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    except OSError:
        path.unlink(missing_ok=True)
        return
    try:
        size = os.fstat(fd).st_size
        os.write(fd, b"\0" * size)
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)


def remove_stale_drafts(home: Path) -> None:
    """Remove the drafts of edits whose process no longer runs."""
    folder = drafts_dir(home)
    if not folder.is_dir():
        return
    for path in folder.glob(f"{DRAFT_PREFIX}*{DRAFT_SUFFIX}"):
        pid_text = path.name[len(DRAFT_PREFIX):-len(DRAFT_SUFFIX)]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and process_alive(int(pid_text)):
            continue
        remove_draft(path)


def edit_in_editor(
    home: Path, initial: str, announce: Callable[[Path], None] | None = None
) -> str:
    """Open *initial* in the person's editor as a draft in the home; the edited
    text. *announce* is told the draft's path just before the editor starts. The
    draft is removed afterwards, also when the editor fails."""
    argv = editor_command()
    remove_stale_drafts(home)
    make_private_dir(drafts_dir(home))
    path = draft_path(home)
    remove_draft(path)  # a draft of this pid can only be a leftover
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)
            fh.write(initial)
        if announce is not None:
            announce(path)
        try:
            result = subprocess.run([*argv, str(path)], check=False)
        except FileNotFoundError:
            raise EditorError(f"the editor {argv[0]!r} was not found; set $EDITOR to an "
                              "editor, or pass the new text with --text") from None
        except PermissionError:
            raise EditorError(f"the editor {argv[0]!r} cannot be run (permission denied); "
                              "set $EDITOR to an editor, or pass the new text with --text"
                              ) from None
        except OSError as exc:
            raise EditorError(f"the editor {argv[0]!r} cannot be run ({exc.strerror}); "
                              "set $EDITOR, or pass the new text with --text") from None
        if result.returncode != 0:
            raise EditorError(f"the editor exited with status {result.returncode}; "
                              "nothing changed")
        return path.read_text(encoding="utf-8")
    finally:
        remove_draft(path)
        with contextlib.suppress(OSError):
            drafts_dir(home).rmdir()  # only when empty: another edit may be open
