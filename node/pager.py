"""Long output through a pager, colour only where it belongs, lines that fit the terminal.

* :func:`use_colour`: colour on a terminal only, never with ``NO_COLOR`` set
  (https://no-color.org) or ``TERM=dumb``; ``--color always|never`` overrides.
* :func:`page`: text taller than the terminal goes through ``$PAGER`` (default
  ``less -R``, with ``LESS=FRX`` unless the person set ``LESS``) when stdout is a
  terminal; never when it is not (a pipe, a file), never with ``PAGER`` empty or
  ``cat``. The pager is handed the text on its stdin: nothing is written to disk.
* :func:`fit`: a line cut to a width in terminal columns (wide characters count
  two), ending in "…" when cut.

Text from elsewhere must already be :func:`node.terminal.printable` when it
reaches :func:`page`: it writes below the filter of ``node.terminal`` so that the
program's own colour escapes survive.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import unicodedata
from collections.abc import Mapping
from typing import Literal, TextIO

from .terminal import unfiltered

ColourChoice = Literal["auto", "always", "never"]
COLOUR_CHOICES: tuple[ColourChoice, ...] = ("auto", "always", "never")
DEFAULT_PAGER = "less -R"
DEFAULT_LESS = "FRX"  # quit if one screen, keep colours, leave the text on the screen
DEFAULT_COLUMNS = 80
DEFAULT_ROWS = 24

BOLD = "\x1b[1m"
DIM = "\x1b[2m"
MATCH = "\x1b[1;33m"  # bold yellow: a search match
RESET = "\x1b[0m"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def use_colour(stream: TextIO, env: Mapping[str, str] | None = None,
               choice: ColourChoice = "auto") -> bool:
    if choice != "auto":
        return choice == "always"
    env = os.environ if env is None else env
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def terminal_size(stream: TextIO, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(columns, rows) of the terminal *stream* writes to; ``COLUMNS`` and ``LINES``
    win, as for every other program; 80x24 when nothing says."""
    env = os.environ if env is None else env
    columns = rows = 0
    try:
        size = os.get_terminal_size(unfiltered(stream).fileno())
        columns, rows = size.columns, size.lines
    except (AttributeError, NotImplementedError, OSError, ValueError):
        pass
    with contextlib.suppress(ValueError):
        columns = int(env.get("COLUMNS", "")) or columns
    with contextlib.suppress(ValueError):
        rows = int(env.get("LINES", "")) or rows
    return columns or DEFAULT_COLUMNS, rows or DEFAULT_ROWS


def char_width(ch: str) -> int:
    if unicodedata.combining(ch) or ch in "\u200b\u200c\u200d\ufe0f":
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(text: str) -> int:
    return sum(char_width(ch) for ch in text)


def fit(text: str, width: int) -> str:
    """*text* (one line, no escapes) cut to *width* columns, "…" marking the cut."""
    if display_width(text) <= width:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        w = char_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _rows_needed(text: str, columns: int) -> int:
    rows = 0
    for line in text.split("\n"):
        rows += max(1, -(-display_width(line) // columns))
    return rows


def page(text: str, out: TextIO, env: Mapping[str, str] | None = None) -> None:
    """Write *text* to *out*, through the pager when it is a terminal and *text*
    is taller than it (module docstring)."""
    env = os.environ if env is None else env
    raw = unfiltered(out)
    if not text.endswith("\n"):
        text += "\n"
    pager = env.get("PAGER", DEFAULT_PAGER).strip()
    columns, rows = terminal_size(out, env)
    if (not is_terminal(raw) or pager in ("", "cat")
            or _rows_needed(text.rstrip("\n"), columns) < rows):
        raw.write(text)
        raw.flush()
        return
    raw.flush()
    child_env = dict(env)
    child_env.setdefault("LESS", DEFAULT_LESS)
    encoding = getattr(raw, "encoding", None) or "utf-8"
    try:
        # PAGER is a shell command line, as git and man read it.
        proc = subprocess.Popen(pager, shell=True, stdin=subprocess.PIPE,
                                stdout=raw.fileno(), env=child_env)
    except OSError:
        raw.write(text)
        raw.flush()
        return
    assert proc.stdin is not None
    try:
        proc.stdin.write(text.encode(encoding, "replace"))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the person left the pager before the end: nothing more to show
    try:
        status = proc.wait()
    except KeyboardInterrupt:
        status = proc.wait()
    if status == 127:  # the shell could not find the pager: show the text anyway
        raw.write(text)
        raw.flush()


def highlight(text: str, spans: tuple[tuple[int, int], ...], colour: bool) -> str:
    """*text* with each span in the match colour; unchanged without colour."""
    if not colour or not spans:
        return text
    out: list[str] = []
    at = 0
    for a, b in sorted(spans):
        if a < at:
            continue
        out += [text[at:a], MATCH, text[a:b], RESET]
        at = b
    out.append(text[at:])
    return "".join(out)
