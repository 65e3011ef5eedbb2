"""The REPL driven through prompt-toolkit's pipe input, its output recorded.

Every wait is on a condition (text appearing in the output, the REPL ending)
under a deadline; the recording output wakes waiters on each write, so there
is no polling and no sleeping.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import trio
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from prompt_toolkit.input import PipeInput, create_pipe_input
from prompt_toolkit.output import DummyOutput

from crdt.journal import Reflection
from node.app import Mirror
from node.core import Arrival, MirrorCore, open_core
from node.errors import UsageError
from node.home import Home
from node.repl.prompt import (
    CommandCompleter,
    CommandHistory,
    arrival_line,
    help_text,
    printable,
    run_repl,
)

WAIT_S = 10
ESC_ENTER = "\x1b\r"
CTRL_C = "\x03"
CTRL_D = "\x04"


class RecordingOutput(DummyOutput):
    """An output that keeps what is written (from any thread) and wakes trio waiters."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._parts: list[str] = []
        self._token = trio.lowlevel.current_trio_token()
        self._changed = trio.Event()

    def write(self, data: str) -> None:
        self._record(data)

    def write_raw(self, data: str) -> None:
        self._record(data)

    def _record(self, data: str) -> None:
        with self._lock:
            self._parts.append(data)
        try:
            self._token.run_sync_soon(self._wake)
        except trio.RunFinishedError:
            pass

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def text(self) -> str:
        with self._lock:
            return "".join(self._parts)

    async def wait_for(self, needle: str, *, after: int = 0) -> int:
        """Wait until *needle* is written past offset *after*; the offset just past it."""
        with trio.fail_after(WAIT_S):
            while True:
                changed = self._changed
                found = self.text().find(needle, after)
                if found >= 0:
                    return found + len(needle)
                await changed.wait()


class Session:
    def __init__(self, core: MirrorCore, pipe: PipeInput, out: RecordingOutput) -> None:
        self.core = core
        self.pipe = pipe
        self.out = out
        self.done = trio.Event()
        self.mark = 0  # output offset up to which we have looked

    def type(self, keys: str) -> None:
        self.pipe.send_text(keys)

    async def expect(self, needle: str) -> None:
        """Wait for *needle* after what earlier expectations consumed."""
        self.mark = await self.out.wait_for(needle, after=self.mark)

    async def enter(self, line: str, *, then: str) -> None:
        self.type(line + "\r")
        await self.expect(then)

    async def reflect(self, text: str) -> None:
        """Type a reflection and wait until its mirrorback is saved and shown."""
        before = len(await self.core.journal.all())
        self.type(text + "\r")
        await self.expect("saved ")
        await self.expect(f"{before + 1} reflection")  # the next prompt's toolbar

    async def wait_done(self) -> None:
        with trio.fail_after(WAIT_S):
            await self.done.wait()


@asynccontextmanager
async def running_repl(core: MirrorCore) -> AsyncIterator[Session]:
    """A REPL on *core* in the background; the block must end it (or it is cancelled)."""
    with create_pipe_input() as pipe:
        session = Session(core, pipe, RecordingOutput())

        async def run() -> None:
            await run_repl(Mirror(core), input=pipe, output=session.out)
            session.done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await session.expect("Type a reflection, or /help")
            yield session
            if not session.done.is_set():
                nursery.cancel_scope.cancel()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


# --------------------------------------------------------------------------- reflecting


async def test_a_reflection_is_saved_and_its_mirrorback_shown(home: Home) -> None:
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.reflect("I walked by the river with Anna and felt calm, then restless.")
        repl.type("/quit\r")
        await repl.wait_done()
        [saved] = await core.journal.all()
    assert saved.text == "I walked by the river with Anna and felt calm, then restless."
    assert saved.mirrorback is not None and saved.mirrorback.text
    assert saved.mirrorback.text in repl.out.text()
    assert f"saved {saved.id[:8]}" in repl.out.text()


async def test_an_engine_failure_is_shown_once_and_not_saved_with_the_mirrorback(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.config import Config
    from node.engine.offline import compose_mirrorback
    from node.llm.keys import ENV_KEY

    # A remote model with no API key fails at once, before any call: the notice path.
    monkeypatch.delenv(ENV_KEY, raising=False)
    home.ensure()
    home.save_config(Config(mirror_mode="hybrid", engine_mode="remote_llm"))
    text = "Rent again. I keep checking the bank app and my chest goes tight."
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.reflect(text)
        repl.type("/quit\r")
        await repl.wait_done()
        [saved] = await core.journal.all()
    shown = repl.out.text()
    assert shown.count("the model could not be asked") == 1 and "no API key" in shown
    assert saved.mirrorback is not None
    assert saved.mirrorback.text == compose_mirrorback(text)
    assert saved.mirrorback.text in shown


async def test_esc_enter_makes_a_multi_line_entry(home: Home) -> None:
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.reflect(f"first line{ESC_ENTER}second line")
        repl.type(CTRL_D)
        await repl.wait_done()
        [saved] = await core.journal.all()
    assert saved.text == "first line\nsecond line"


async def test_ctrl_c_drops_the_line_and_ctrl_d_quits(home: Home) -> None:
    async with open_core(home) as core, running_repl(core) as repl:
        repl.type("half typed" + CTRL_C)
        await repl.enter("/help", then="Esc-Enter (or Alt-Enter) starts a new line")
        repl.type(CTRL_D)
        await repl.wait_done()
        assert await core.journal.all() == []


async def test_private_reflection(home: Home) -> None:
    async with open_core(home) as core, running_repl(core) as repl:
        repl.type("/private only for me\r")
        await repl.expect("(private)")
        await repl.expect("1 reflection")
        repl.type("/exit\r")
        await repl.wait_done()
        [saved] = await core.journal.all()
    assert saved.private and saved.text == "only for me"


async def test_a_leading_double_slash_is_a_reflection(home: Home) -> None:
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.reflect("//etc is where the config lives, and so am I")
        repl.type("/quit\r")
        await repl.wait_done()
        [saved] = await core.journal.all()
    assert saved.text == "/etc is where the config lives, and so am I"


# --------------------------------------------------------------------------- commands


async def test_commands(home: Home, tmp_path: Path) -> None:
    export = tmp_path / "out.json"
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.reflect("Sunday: the garden, my sister, a long quiet.")
        [saved] = await core.journal.all()
        await repl.enter("/list", then=f"{saved.id[:8]}  ")
        await repl.expect("Sunday: the garden")
        await repl.enter(f"/show {saved.id[:6]}", then=saved.id)
        await repl.expect("— mirrorback")
        await repl.enter("/mode hybrid", then="mode: hybrid")
        await repl.enter(f"/export json {export}", then=f"exported 1 reflection to {export}")
        await repl.enter("/frobnicate", then="unknown command /frobnicate")
        await repl.enter("/lsit", then="did you mean /list?")
        await repl.enter("/", then="a / starts a command")
        await repl.enter("/help", then="/export json|markdown PATH")
        repl.type("/quit\r")
        await repl.wait_done()
    assert json.loads(home.config_path.read_text())["mirror_mode"] == "hybrid"
    assert "Sunday: the garden, my sister, a long quiet." in export.read_text()
    history = home.history_path.read_text()
    assert "/list" in history and "/mode hybrid" in history
    assert "Sunday" not in history  # reflections are not kept in the history file


async def test_failing_commands_print_one_line_and_the_repl_goes_on(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.enter("/show zzzz", then="error: no reflection 'zzzz'")
        await repl.enter("/show", then="error: /show needs an id")
        await repl.enter("/list many", then="error: /list takes a number")
        await repl.enter("/mode sideways", then="error: /mode takes one of local, hybrid, cloud")
        await repl.enter("/export yaml x", then="error: usage: /export json|markdown PATH")
        await repl.enter(f"/export json {tmp_path}/no/such/x.json", then="no such directory")

        async def broken() -> None:
            raise RuntimeError("the disk is on fire")

        monkeypatch.setattr(core.journal, "all", broken)
        # the CLI's tests may have pointed "mirror" at a log file, without propagation
        monkeypatch.setattr(logging.getLogger("mirror"), "propagate", True)
        with caplog.at_level(logging.ERROR, logger="mirror.repl"):
            await repl.enter("/list", then="error: unexpected RuntimeError; details in ")
        monkeypatch.undo()
        await repl.enter("/list", then="No reflections yet")
        repl.type("/quit\r")
        await repl.wait_done()
    assert "Traceback" not in repl.out.text()
    records = [
        r for r in caplog.records if r.name == "mirror.repl" and r.levelno >= logging.ERROR
    ]
    assert records and {r.getMessage() for r in records} == {"/list failed"}
    exc_info = records[0].exc_info
    assert exc_info is not None and "the disk is on fire" in str(exc_info[1])


async def test_toolbar_shows_mode_engine_and_count(home: Home) -> None:
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.expect(f"local · {core.engine.name} engine · 0 reflections  │  Esc-Enter")
        await repl.reflect("one")
        await repl.enter("/mode cloud", then="mode: cloud")
        await repl.expect(f"cloud · {core.engine.name} engine · 1 reflection ")
        repl.type(CTRL_D)
        await repl.wait_done()


# --------------------------------------------------------------------------- other processes


async def test_a_reflection_from_another_store_arrives_above_the_prompt(home: Home) -> None:
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.reflect("written here")
        async with open_core(home) as other:
            await other.reflect("written elsewhere\nsecond line")
        await repl.expect("1 reflection arrived from this device: written elsewhere")
        await repl.expect("2 reflections")  # the toolbar, redrawn
        repl.type("/quit\r")
        await repl.wait_done()
    assert "second line" not in repl.out.text()
    assert "arrived from this device: written here" not in repl.out.text()


# --------------------------------------------------------------------------- lifecycle


async def test_cancelling_ends_a_waiting_prompt_promptly(home: Home) -> None:
    async with open_core(home) as core:
        with create_pipe_input() as pipe:
            out = RecordingOutput()
            with trio.move_on_after(WAIT_S) as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(partial(run_repl, Mirror(core), input=pipe, output=out))
                    await out.wait_for("mirror>")  # the prompt has rendered
                    nursery.cancel_scope.cancel()
            assert not scope.cancelled_caught
            # the store is still usable: nothing was left half-done
            await core.reflect("after the REPL")


async def test_without_a_terminal_it_says_so(home: Home) -> None:
    async with open_core(home) as core:
        with pytest.raises(UsageError, match="needs a terminal"):
            await run_repl(Mirror(core))


# --------------------------------------------------------------------------- pieces


def completions(text: str) -> list[str]:
    doc = Document(text, len(text))
    return [c.text for c in CommandCompleter().get_completions(doc, CompleteEvent())]


def test_completion_of_commands_and_their_choices() -> None:
    assert completions("/li") == ["/list"]
    assert completions("/") == [f"/{n}" for n in
                                ("list", "show", "private", "search", "tags", "star", "unstar",
                                 "onthisday", "stats", "edit", "delete", "sync", "export",
                                 "mode", "patterns",
                                 "tensions", "graph", "evolve", "related", "engine", "ask",
                                 "digest", "commons", "mood", "config", "help", "quit", "exit")]
    assert completions("/mode h") == ["hybrid"]
    assert completions("/export ") == ["json", "markdown"]
    assert completions("/show ab") == []
    assert completions("a reflection") == []


def test_history_keeps_commands_only(tmp_path: Path) -> None:
    history = CommandHistory(str(tmp_path / "history"))
    for line in ["/list 5", "I am tired", "/private secret", "//etc"]:
        history.append_string(line)
    assert list(history.load_history_strings()) == ["/list 5"]


def test_arrival_lines_show_the_newest_first_line() -> None:
    def reflection(text: str) -> Reflection:
        return Reflection(id="abcd" * 3, created_at=datetime.now(UTC), text=text)

    arrival = Arrival((), "this device")
    one = arrival_line(arrival, [reflection("  sleep came late\nand left early")])
    assert one == "1 reflection arrived from this device: sleep came late"
    two = arrival_line(arrival, [reflection("older"), reflection("newer")])
    assert two == "2 reflections arrived from this device; newest: newer"


def test_printable_removes_terminal_controls() -> None:
    assert printable("a\x1b[2Jb\tc\nd\x07\x9b\r") == "ab\tc\nd"
    family = "\U0001f469\u200d\U0001f467 \u200fשלום"
    assert printable(family) == family


def test_help_mentions_every_command_and_the_newline_key() -> None:
    text = help_text()
    for name in ("list", "show", "private", "export", "mode", "help", "quit", "exit"):
        assert f"/{name}" in text
    assert "Esc-Enter" in text


# --------------------------------------------------------------------------- journal commands


async def test_search_edit_delete_and_sync_in_the_repl(
    home: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nsed -i "s/river/sea/" "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    async with open_core(home) as core, running_repl(core) as repl:
        await repl.reflect("Worried about the deadline at #work")
        await repl.reflect("A calm walk by the river")
        first, second = await core.journal.all()
        assert first.tags == ("work",)  # the inline #tag
        await repl.enter("/search deadline", then=first.id[:8])
        await repl.expect("Worried about the deadline")
        await repl.enter("/search --from yesterday #work", then=first.id[:8])
        await repl.enter("/search nothinglikethis", then="Nothing found for 'nothinglikethis'")
        await repl.enter("/search --from someday x", then="error: cannot read the date")
        await repl.enter("/tags", then="1  #work")
        await repl.enter(f"/star {second.id[:6]}", then=f"starred {second.id[:8]}")
        await repl.enter("/list --starred", then=f"{second.id[:8]}")
        await repl.enter(f"/edit {second.id[:6]} A calm walk by the lake", then="edited ")
        await repl.expect("lake")  # the new mirrorback answers the new words
        assert (await core.journal.find(second.id))[1].text == "A calm walk by the lake"
        await repl.enter(f"/edit {first.id[:6]}", then="unchanged")  # the editor found no river
        await repl.enter(f"/delete {first.id[:6]}", then="[y/N]")
        await repl.enter("n", then="kept")
        assert len(await core.journal.all()) == 2
        await repl.enter(f"/delete {first.id[:6]}", then="[y/N]")
        await repl.enter("y", then=f"deleted {first.id[:8]}")
        assert [r.id for r in await core.journal.all()] == [second.id]
        await repl.enter("/sync", then="not serving")
        await repl.enter("/sync sideways", then="error: /sync takes on or off")
        await repl.enter("/onthisday", then="earlier years")
        await repl.enter("/stats", then="entries per week")
        repl.type("/quit\r")
        await repl.wait_done()


def test_help_fits_80_columns_without_cutting_a_word() -> None:
    text = help_text(80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    # every description reads whole once the wrapping is undone
    flat = " ".join(" ".join(lines).split())
    for name in ("search", "edit", "delete", "sync", "list"):
        assert f"/{name}" in text
    assert "change a reflection's text (in $EDITOR without TEXT); its mirrorback is " \
           "written again" in flat
