"""What reaches the person's terminal: never a control sequence from someone else's text.

Reflections (imported or synced from another device), Commons titles and bodies,
device names and server messages come from elsewhere. Printed raw, a control
sequence in them drives the terminal: OSC 52 writes the clipboard, OSC 0 sets
the window title, CSI 2J clears the screen, others move the cursor to overwrite
what is shown, or make the terminal answer as if typed. :func:`printable`
removes every C0 and C1 control character but newline and tab, and with the
escape sequences they introduce, their parameters too, so that nothing of them
is left to be read as text.

:class:`SafeOutput` applies it to everything written to a stream; ``mirror``
wraps stdout and stderr in it for every command (the one place all CLI output
goes through), and the REPL passes what it shows through :func:`printable`.
The program's own deliberate controls (a progress line's carriage return) go
to :func:`unfiltered`.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO, cast

# ESC or its 8-bit C1 form, for each sequence that carries a payload:
#   CSI  ESC [  params intermediates final        (8-bit: U+009B)
#   OSC  ESC ]  text ... BEL or ST                (U+009D)
#   DCS  ESC P, SOS ESC X, PM ESC ^, APC ESC _ ... ST   (U+0090, U+0098, U+009E, U+009F)
# A string sequence that is never terminated is removed up to the end of its line,
# where a terminal would go on swallowing.
_ST = r"(?:\x1b\\|\x9c|\x07)"
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI (a final byte cut off: up to there)
    r"|(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f])[^\n]*?(?:" + _ST + r"|(?=\n)|$)"
    r"|\x1b[ -/]*[0-~]?"  # two-character escapes: ESC c (reset), ESC 7, ESC ( B, a lone ESC
)
# Whatever control is left: C0 but tab and newline, DEL, C1.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """*text* without terminal control sequences or control characters; newline and
    tab are kept. Format characters (joiners, direction marks) are kept: they
    belong to the writing."""
    if not _CONTROL.search(text):
        return text  # the usual case, and fast
    return _CONTROL.sub("", _SEQUENCE.sub("", text))


class SafeOutput:
    """A text stream that writes :func:`printable` text to *stream*.

    Everything else (``fileno``, ``isatty``, ``encoding``, ``buffer``) is the
    wrapped stream's, so code that writes to it cannot tell the difference."""

    def __init__(self, stream: TextIO) -> None:
        self.unfiltered = stream

    def write(self, text: str) -> int:
        self.unfiltered.write(printable(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.unfiltered.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unfiltered, name)


def unfiltered(stream: TextIO) -> TextIO:
    """The stream under a :class:`SafeOutput` (or *stream* itself): for the
    program's own control characters only, never for text from elsewhere."""
    inner = getattr(stream, "unfiltered", None)
    return inner if inner is not None else stream


@contextlib.contextmanager
def safe_stdio() -> Iterator[None]:
    """Within the block, everything written to sys.stdout and sys.stderr is
    :func:`printable` (the streams are restored afterwards)."""
    saved = sys.stdout, sys.stderr
    if sys.stdout is not None:
        sys.stdout = cast(TextIO, SafeOutput(sys.stdout))
    if sys.stderr is not None:
        sys.stderr = cast(TextIO, SafeOutput(sys.stderr))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def direct_stdio() -> Iterator[None]:
    """Within the block, sys.stdout and sys.stderr are the terminal's own streams:
    for prompt-toolkit, which draws with escape sequences of its own (the REPL
    passes every text it shows through :func:`printable` itself)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = unfiltered(sys.stdout), unfiltered(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
