"""The real ``mirror`` program in a pseudo-terminal: greeting, a reflection, /quit.

Stdlib only (os.openpty, a trio FdStream on the master side). One task reads the
terminal until the program closes it; the test waits on what has been read,
each wait bounded by a deadline.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import sys
import termios
from pathlib import Path

import pytest
import trio

from node.core import open_core
from node.home import Home
from node.repl.prompt import PROMPT
from tests.helpers import REPO, mirror_env

pytestmark = [
    pytest.mark.pty,
    pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal"),
]

WAIT_S = 20
CTRL_C = "\x03"
ROWS, COLUMNS = 30, 100
# CSI sequences, OSC strings, charset selection and the other short escapes.
ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[=>78]"
)


CPR_REQUEST = b"\x1b[6n"
CPR_ANSWER = b"\x1b[1;1R"  # "the cursor is on the top row": the whole screen is below


class PtyReader:
    """Everything the program wrote to its terminal, and waits on it. With
    *answer_cpr* it answers cursor position requests as a terminal would."""

    def __init__(self, master: int, *, answer_cpr: bool) -> None:
        self.stream = trio.lowlevel.FdStream(master)
        self.answer_cpr = answer_cpr
        self.raw = bytearray()
        self.eof = False
        self.mark = 0
        self._answered = 0
        self._changed = trio.Event()

    async def read_until_eof(self) -> None:
        while True:
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:  # EIO: the last slave fd has closed
                data = b""
            if data:
                self.raw += data
                if self.answer_cpr:
                    await self._answer_cursor_position_requests()
            else:
                self.eof = True
            self._changed.set()
            self._changed = trio.Event()
            if self.eof:
                return

    async def _answer_cursor_position_requests(self) -> None:
        asked = self.raw.count(CPR_REQUEST)
        while self._answered < asked:
            await self.stream.send_all(CPR_ANSWER)
            self._answered += 1

    def text(self) -> str:
        """What a person would read: escape sequences and carriage returns removed."""
        return ESCAPES.sub("", self.raw.decode("utf-8", "replace")).replace("\r", "")

    async def expect(self, needle: str) -> None:
        """Wait for *needle* after whatever earlier expectations consumed."""
        with trio.fail_after(WAIT_S):
            while True:
                changed = self._changed
                text = self.text()
                found = text.find(needle, self.mark)
                if found >= 0:
                    self.mark = found + len(needle)
                    return
                if self.eof:
                    raise AssertionError(f"the program ended before {needle!r}:\n{text[-3000:]}")
                await changed.wait()

    async def type(self, keys: str) -> None:
        await self.stream.send_all(keys.encode())


def open_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    return master, slave


@pytest.mark.parametrize("answer_cpr", [False, True], ids=["no-cpr", "cpr"])
async def test_the_real_program_in_a_terminal(tmp_path: Path, answer_cpr: bool) -> None:
    """Without cursor position reports prompt-toolkit cannot know the room below
    the prompt and leaves the toolbar out; with them the toolbar is drawn."""
    home = tmp_path / "home"
    text = "Today I argued with my brother about the garden, and I felt unheard."
    master, slave = open_pty()
    env = mirror_env(home, TERM="xterm-256color", LANG="C.UTF-8")
    if not answer_cpr:
        env["PROMPT_TOOLKIT_NO_CPR"] = "1"
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "node.cli", "--home", str(home)],
            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO,
            start_new_session=True,
        )
    finally:
        os.close(slave)
    terminal = PtyReader(master, answer_cpr=answer_cpr)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(terminal.read_until_eof)
            await terminal.expect("Type a reflection, or /help")
            await terminal.expect(PROMPT.strip())
            if answer_cpr:
                await terminal.expect("local · offline engine · 0 reflections  │  Esc-Enter")
            await terminal.type("not this" + CTRL_C)  # drops the line, keeps the REPL
            await terminal.type(text + "\r")
            await terminal.expect("saved ")
            await terminal.expect(PROMPT.strip())  # the next prompt: the mirrorback is done
            if answer_cpr:
                await terminal.expect("local · offline engine · 1 reflection  │")
            await terminal.type("/quit\r")
            with trio.fail_after(WAIT_S):
                status = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
        await terminal.stream.aclose()

    assert status == 0, terminal.text()[-3000:]
    assert "Traceback" not in terminal.text()
    async with open_core(Home(home), create=False) as core:
        [saved] = await core.journal.all()
    assert saved.text == text
    assert saved.mirrorback is not None
    shown = " ".join(terminal.text().split())
    assert " ".join(saved.mirrorback.text.split()) in shown
