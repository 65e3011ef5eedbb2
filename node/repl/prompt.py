"""The interactive prompt: write reflections, read their mirrorbacks, run /commands.

Theory of operation. prompt-toolkit's ``prompt_async`` does not run under trio,
so every prompt runs in a worker thread (``session.prompt`` with its own asyncio
loop) while trio keeps the store, the engine and the watch on other processes.
:class:`_Terminal` is the only thing both sides touch:

* ``prompt_blocking`` runs in the worker thread; its ``pre_run`` hook records the
  prompt's loop *before the first render*, under a lock;
* ``write`` runs on trio: with no prompt waiting it writes straight to the
  terminal (under that lock, so it cannot interleave with a starting prompt);
  with one waiting it hands the text to the prompt's loop, which prints it
  above the prompt with ``run_in_terminal``; text the loop did not get to
  before it ended is written by the worker thread once the prompt is gone;
* ``close`` (from trio, when the REPL is cancelled) ends a waiting prompt with
  ``EOFError`` or keeps the next one from starting, so the worker thread always
  returns and the REPL ends promptly.

Stray output of other code (warnings, libraries) goes above the prompt too:
the REPL runs inside ``patch_stdout(raw=True)``.

History. Only commands go to the history file in the home. Reflections are
remembered for the session (Up recalls them) but never written there: a
deleted reflection must leave no copy of its text behind, and a private one
must not sit in a second file.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import logging
import shlex
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import trio
from prompt_toolkit import PromptSession
from prompt_toolkit.application import create_app_session, run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import patch_stdout

from crdt import StoreError, ValueRangeError
from crdt.journal import Reflection

from ..app import Arrival, Mirror
from ..app.exporting import EXPORT_FORMATS
from ..app.settings import ENGINE_CHOICES
from ..config import MIRROR_MODES
from ..drafts import edit_in_editor
from ..engine.base import EngineNotice
from ..errors import MirrorError, UsageError
from ..files import ensure_private_file
from ..journal.arguments import filter_of
from ..pager import DEFAULT_COLUMNS, display_width, use_colour
from ..terminal import printable
from ..views.conventions import describe_filter
from ..views.journal import arrival_line, format_list_line, format_reflection, plural
from .commands import VIEWS, run_view
from .conventions import JOURNAL_COMMANDS, parse_repl_args, run_journal_command

log = logging.getLogger("mirror.repl")

PROMPT = "mirror> "
LIST_DEFAULT = 20
KEYS_HINT = "Esc-Enter: new line · /help"

# name → (arguments, what it does); the order is the order of /help.
COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("[N|all] [--from D] [--to D] [--on D] [--tag T] [--starred]",
             f"the newest N reflections (default {LIST_DEFAULT}); dates like yesterday, "
             "\"2 weeks ago\", \"last monday\", dec 1"),
    "show": ("ID", "one reflection and its mirrorback (4+ characters of its id)"),
    "private": ("TEXT", "save a reflection that never leaves this device"),
    **JOURNAL_COMMANDS,  # /search /tags /star /unstar /onthisday /stats
    "edit": ("ID [TEXT]", "change a reflection's text (in $EDITOR without TEXT); its "
             "mirrorback is written again"),
    "delete": ("ID", "delete a reflection and all the engine learned from it (asks first)"),
    "sync": ("[on|off]", "sync status, or turn syncing with your devices on or off"),
    "export": ("json|markdown PATH", "everything, as one JSON file or a Markdown folder"),
    "mode": ("[local|hybrid|cloud]", "show or set the mirror mode"),
    **VIEWS,  # /patterns /tensions /graph /evolve /related /engine /ask /digest /commons …
    "help": ("", "this help"),
    "quit": ("", "leave (also /exit or Ctrl-D)"),
    "exit": ("", "leave"),
}
QUIT_COMMANDS = frozenset({"quit", "exit"})
ARGUMENT_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": MIRROR_MODES, "sync": ("on", "off"), "export": EXPORT_FORMATS,
    "engine": tuple(ENGINE_CHOICES),
}
KNOWN_ERRORS = (MirrorError, StoreError, ValueRangeError)


MIN_COLUMNS = 40  # narrower than this, a terminal's size is not believed
HELP_COLUMN = 28  # the widest /command column before descriptions go below it


def help_text(width: int = DEFAULT_COLUMNS) -> str:
    """The help, every line at most *width* columns: descriptions wrap at word
    boundaries beside their command, or below a command too long for the column."""
    width = max(width, MIN_COLUMNS)
    lines: list[str] = []
    for line in (
        "Type a reflection and press Enter to save it; its mirrorback follows.",
        "Esc-Enter (or Alt-Enter) starts a new line within an entry.",
        "Ctrl-C clears the line, Ctrl-D quits. Tab completes commands.",
    ):
        lines += textwrap.wrap(line, width)
    lines.append("")
    column = min(HELP_COLUMN, max(display_width(f"  /{n} {a}") for n, (a, _) in COMMANDS.items()))
    indent = " " * (column + 2)
    for name, (args, what) in COMMANDS.items():
        left = f"  /{name} {args}".rstrip()
        if display_width(left) > column:
            lines += textwrap.wrap(left, width, subsequent_indent=" " * (len(name) + 4),
                                   break_on_hyphens=False)
            lines += textwrap.wrap(what, width, initial_indent=indent, subsequent_indent=indent)
            continue
        body = textwrap.wrap(what, width - column - 2) or [""]
        lines.append(left.ljust(column) + "  " + body[0])
        lines += [indent + more for more in body[1:]]
    lines.append("")
    lines += textwrap.wrap("A line starting with // is saved as a reflection starting with /.",
                           width)
    return "\n".join(lines)


class CommandCompleter(Completer):
    """Completes the leading /command, and the fixed choices of /mode and /export."""

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        before = document.text_before_cursor
        if not before.startswith("/") or "\n" in before:
            return
        words = before.split()
        if len(words) <= 1 and not before.endswith(" "):
            stem = before[1:]
            for name in COMMANDS:
                if name.startswith(stem):
                    yield Completion(f"/{name}", start_position=-len(before))
            return
        choices = ARGUMENT_CHOICES.get(words[0][1:], ())
        if len(words) == 1 or (len(words) == 2 and not before.endswith(" ")):
            stem = "" if len(words) == 1 else words[1]
            for choice in choices:
                if choice.startswith(stem):
                    yield Completion(choice, start_position=-len(stem))


class CommandHistory(FileHistory):
    """History in the home that keeps commands only (see the module docstring)."""

    def store_string(self, string: str) -> None:
        if string.startswith("/") and not string.startswith(("//", "/private")):
            super().store_string(string)


def private_history(path: Path) -> str:
    """The history file's name, the file created 0600 first (prompt-toolkit would
    create it with the umask's mode)."""
    ensure_private_file(path)
    return str(path)


def key_bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("enter")
    def _submit(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @kb.add("escape", "enter")
    def _newline(event: KeyPressEvent) -> None:
        event.current_buffer.newline(copy_margin=False)

    return kb


class _Terminal:
    """The prompt in its worker thread, and output that never tears it (module docstring)."""

    def __init__(self, session: PromptSession[str]) -> None:
        self._session = session
        self._output = session.app.output
        self.output = self._output
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None  # a waiting prompt's loop
        self._pending: list[str] = []
        self._closing = False

    # -- worker thread

    def prompt_blocking(self) -> str:
        with self._lock:
            if self._closing:
                raise EOFError
        try:
            return self._session.prompt(pre_run=self._prompt_started)
        finally:
            with self._lock:
                self._loop = None
                self._write_pending_locked()

    def _prompt_started(self) -> None:
        """In the prompt's loop, before its first render."""
        with self._lock:
            self._loop = asyncio.get_running_loop()
            closing = self._closing
        if closing:
            self._session.app.exit(exception=EOFError())

    # -- the prompt's loop

    def _print_above_prompt(self) -> None:
        run_in_terminal(self._write_pending, in_executor=False)

    def _write_pending(self) -> None:
        with self._lock:
            self._write_pending_locked()

    # -- trio

    def write(self, text: str) -> None:
        with self._lock:
            loop = self._loop
            if loop is None:
                self._write_locked(text)
                return
            self._pending.append(text)
        try:
            loop.call_soon_threadsafe(self._print_above_prompt)
        except RuntimeError:
            pass  # the loop has closed: prompt_blocking writes the text on its way out

    def invalidate(self) -> None:
        """Redraw a waiting prompt (and its toolbar). Thread-safe."""
        self._session.app.invalidate()

    def close(self) -> None:
        """End a waiting prompt with EOFError and refuse new ones. Thread-safe."""
        with self._lock:
            self._closing = True
            loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._exit_prompt)
            except RuntimeError:
                pass  # already ended

    def _exit_prompt(self) -> None:
        app = self._session.app
        if app.future is not None and not app.future.done():
            app.exit(exception=EOFError())

    # -- under the lock

    def _write_pending_locked(self) -> None:
        if self._pending:
            text, self._pending = "".join(self._pending), []
            self._write_locked(text)

    def _write_locked(self, text: str) -> None:
        self._output.write(text)
        self._output.flush()


class Repl:
    """One interactive session over *mirror*; see :func:`run_repl`."""

    def __init__(self, mirror: Mirror) -> None:
        """Create inside the prompt-toolkit app session the REPL runs in."""
        self.mirror = mirror
        session: PromptSession[str] = PromptSession(
            PROMPT,
            multiline=True,
            prompt_continuation=lambda width, line_no, wrapped: "… ".rjust(width),
            history=CommandHistory(private_history(mirror.home.history_path)),
            completer=CommandCompleter(),
            complete_while_typing=False,
            key_bindings=key_bindings(),
            bottom_toolbar=self.toolbar,
        )
        self.terminal = _Terminal(session)
        self.reflections = 0
        self.own_ids: set[str] = set()
        self.commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "help": self.cmd_help,
            "list": self.cmd_list,
            "show": self.cmd_show,
            "private": self.cmd_private,
            "export": self.cmd_export,
            "mode": self.cmd_mode,
            **{n: functools.partial(self.cmd_view, n) for n in VIEWS},
            **{n: functools.partial(self.cmd_journal, n) for n in JOURNAL_COMMANDS},
            "edit": self.cmd_edit,
            "delete": self.cmd_delete,
            "sync": self.cmd_sync,
        }
        self.to_delete: Reflection | None = None  # asked "Delete this reflection?"
        self.nursery: trio.Nursery | None = None  # where background sync runs
        self.sync_scope: trio.CancelScope | None = None

    def say(self, text: str = "") -> None:
        self.terminal.write(printable(text) + "\n")

    def status(self) -> str:
        return (
            f"{self.mirror.config.mirror_mode} · {self.mirror.engine_name} engine · "
            f"{plural(self.reflections, 'reflection')}"
        )

    def toolbar(self) -> str:
        """Runs in the prompt's thread: reads plain attributes only."""
        return f" {self.status()}  │  {KEYS_HINT}"

    async def refresh_counts(self) -> None:
        self.reflections = await self.mirror.reflection_count()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        await self.refresh_counts()
        self.say(f"Mirror · home {self.mirror.home.path}")
        self.say(self.status())
        self.say("Type a reflection, or /help. Esc-Enter starts a new line; Ctrl-D quits.")
        while True:
            try:
                line = await trio.to_thread.run_sync(self.terminal.prompt_blocking)
            except KeyboardInterrupt:
                continue  # Ctrl-C: the half-typed line is dropped
            except EOFError:
                return
            if not await self.handle(line):
                return

    async def handle(self, line: str) -> bool:
        """Act on one entry; False once the person asked to leave."""
        text = line.strip()
        if not text and self.to_delete is None:
            return True
        name = ""
        try:
            if self.to_delete is not None:
                await self.answer_delete(text)
            elif text.startswith("//"):
                await self.reflect(text[1:])
            elif text.startswith("/"):
                words = text[1:].split(maxsplit=1)
                name = words[0].lower() if words else ""
                rest = words[1].strip() if len(words) > 1 else ""
                if name in QUIT_COMMANDS:
                    return False
                await self.command(name, rest)
            else:
                await self.reflect(text)
        except KeyboardInterrupt:
            self.say("(interrupted)")
        except KNOWN_ERRORS as exc:
            log.info("/%s failed: %s", name or "reflect", exc, exc_info=True)
            self.say(f"error: {exc}")
        except Exception as exc:
            log.exception("/%s failed", name or "reflect")
            self.say(
                f"error: unexpected {type(exc).__name__}; details in {self.mirror.home.log_path}"
            )
        return True

    async def command(self, name: str, rest: str) -> None:
        handler = self.commands.get(name)
        if not name:
            self.say("a / starts a command: type /help for the list")
        elif handler is None:
            close = difflib.get_close_matches(name, COMMANDS, n=1, cutoff=0.6)
            hint = f"did you mean /{close[0]}? " if close else ""
            self.say(f"unknown command /{name}: {hint}type /help for the list")
        else:
            await handler(rest)

    # ------------------------------------------------------------------ reflecting

    async def reflect(self, text: str, *, private: bool = False) -> None:
        reflection = await self.mirror.save(text, private=private)
        self.own_ids.add(reflection.id)
        await self.refresh_counts()
        self.say(f"saved {reflection.id[:8]}" + (" (private)" if private else ""))
        await self.show_mirrorback(reflection)

    async def show_mirrorback(self, reflection: Reflection) -> None:
        """Stream the mirrorback of *reflection* (saved with it) to the screen."""
        self.say()
        try:
            async for chunk in self.mirror.stream_mirrorback(reflection):
                if isinstance(chunk, EngineNotice):  # shown now, not part of the mirrorback
                    self.say(f"({chunk.text})")
                    self.say()
                else:
                    self.terminal.write(printable(chunk))
        except KeyboardInterrupt:
            self.say("\n(mirrorback stopped; the reflection is saved)")
            return
        except Exception as exc:
            log.exception("mirrorback failed")
            self.say(f"\nerror: no mirrorback this time ({type(exc).__name__}); "
                     "the reflection is saved")
            return
        self.say()
        self.say()

    def on_arrival(self, arrival: Arrival) -> None:
        # mirror.watch skips what this process wrote, except a write that lands while
        # it refreshes; the ids this REPL saved settle that case.
        news = [r for r in arrival.reflections if r.id not in self.own_ids]
        self.reflections += len(news)
        if news:
            self.say(arrival_line(arrival, news))
            self.terminal.invalidate()

    # ------------------------------------------------------------------ commands

    async def cmd_help(self, rest: str) -> None:
        self.say(help_text(self.width()))

    async def cmd_list(self, rest: str) -> None:
        args = parse_repl_args("list", rest)
        limit: int | None = LIST_DEFAULT if args.limit is None else args.limit
        if len(args.words) > 1:
            raise UsageError(f"/list takes a number or 'all' (got {' '.join(args.words)!r})")
        if args.words:
            word = args.words[0]
            if word.lower() == "all":
                limit = None
            else:
                try:
                    limit = int(word)
                except ValueError:
                    raise UsageError(f"/list takes a number or 'all' (got {word!r})") from None
        wanted = filter_of(args, limit=False)
        found = await self.mirror.listing(wanted)
        if not found.total:
            self.say("No reflections yet. Type one and press Enter.")
            return
        items = found.reflections
        if not items:
            self.say(f"No reflection is {describe_filter(wanted)}")
            return
        shown = items if limit is None else items[-limit:] if limit > 0 else ()
        width = self.width()
        for r in shown:
            self.say(format_list_line(r, width))
        if len(shown) < len(items):
            self.say(f"({len(shown)} of {len(items)}; /list all shows every one)")

    def width(self) -> int:
        """The terminal's width in columns (80 when the output does not say)."""
        try:
            columns = self.terminal.output.get_size().columns
        except (NotImplementedError, OSError, ValueError):
            columns = 0
        return columns if columns >= MIN_COLUMNS else DEFAULT_COLUMNS

    async def cmd_show(self, rest: str) -> None:
        if not rest:
            raise UsageError("/show needs an id, e.g. /show 1a2b")
        r = await self.mirror.find(rest)
        self.say(format_reflection(r))

    async def cmd_private(self, rest: str) -> None:
        if not rest:
            raise UsageError("/private needs the text of the reflection")
        await self.reflect(rest, private=True)

    async def cmd_export(self, rest: str) -> None:
        try:
            args = shlex.split(rest)
        except ValueError as exc:
            raise UsageError(f"/export: {exc}") from None
        if len(args) != 2 or args[0] not in EXPORT_FORMATS:
            raise UsageError("usage: /export json|markdown PATH")
        fmt, target = args[0], Path(args[1])
        result = await self.mirror.export(target, fmt)
        where = target if result.single_file else f"{target}/ ({len(result.files)} files)"
        self.say(f"exported {plural(self.reflections, 'reflection')} to {where}")

    async def cmd_journal(self, name: str, rest: str) -> None:
        """/search /tags /star /unstar /onthisday /stats (node/repl/conventions.py)."""
        colour = use_colour(sys.__stdout__ or sys.stdout)
        text = await run_journal_command(self.mirror, name, rest, colour=colour,
                                         width=self.width())
        self.terminal.write(text + "\n")  # printable already, with our colours only

    async def cmd_edit(self, rest: str) -> None:
        ref, _, text = rest.partition(" ")
        if not ref:
            raise UsageError("/edit needs an id, e.g. /edit 1a2b (then the new text, or "
                             "none to write in $EDITOR)")
        current = await self.mirror.find(ref)
        new = text.strip() or None
        if new is None:
            new = await trio.to_thread.run_sync(edit_in_editor, self.mirror.home.path,
                                                current.text)
        result = await self.mirror.edit(current.id, text=new, mirrorback=False)
        if result.after is result.before:
            self.say("unchanged")
            return
        self.say(f"edited {result.after.id[:8]}")
        if result.scrub is not None and result.scrub.problem is not None:
            self.say(f"error: {result.scrub.problem}")
        if current.mirrorback is not None and result.after.text != current.text:
            await self.show_mirrorback(result.after)  # the old one quoted the old words

    async def cmd_delete(self, rest: str) -> None:
        if not rest:
            raise UsageError("/delete needs an id, e.g. /delete 1a2b")
        r = await self.mirror.find(rest)
        self.say(format_list_line(r, self.width()))
        self.say("Delete this reflection and all the engine learned from it? [y/N]")
        self.to_delete = r

    async def answer_delete(self, answer: str) -> None:
        r, self.to_delete = self.to_delete, None
        if r is None:
            return
        if answer.strip().lower() not in {"y", "yes"}:
            self.say("kept")
            return
        result = await self.mirror.delete(r.id)
        await self.refresh_counts()
        self.say(f"deleted {r.id[:8]}")
        if result.scrub.problem is not None:
            self.say(f"error: {result.scrub.problem}")

    async def cmd_sync(self, rest: str) -> None:
        action = rest.strip().lower()
        if action not in ("", "on", "off"):
            raise UsageError(f"/sync takes on or off (got {rest!r})")
        if action:
            await self.mirror.set_sync_enabled(action == "on")
            if action == "on" and self.sync_scope is None and self.nursery is not None:
                self.nursery.start_soon(self._sync_until_off)
                self.say("sync: on (with your devices while the prompt is open)")
            elif action == "off" and self.sync_scope is not None:
                self.sync_scope.cancel()
                self.sync_scope = None
                self.say("sync: off")
            else:
                self.say(f"sync: {action}")
            return
        status = await self.mirror.sync_status()
        if status.serving:
            self.say(f"serving on {status.listening}; {status.pending} frames pending")
        else:
            self.say("not serving (/sync on, or: mirror serve)")
        self.say(f"{plural(len(status.shared_documents), 'document')} shared with your devices")
        for peer in status.peers:
            state = "connected" if peer.get("connected") else "offline"
            self.say(f"  {peer.get('name') or peer.get('device_id')}: {state}")

    async def _sync_until_off(self) -> None:
        with trio.CancelScope() as scope:
            self.sync_scope = scope
            await _sync_in_background(self)
        if self.sync_scope is scope:
            self.sync_scope = None

    async def cmd_view(self, name: str, rest: str) -> None:
        """The engine's views, questions, the mood, the Commons (node/repl/commands.py)."""
        self.say(await run_view(self.mirror, name, rest))

    async def cmd_mode(self, rest: str) -> None:
        if not rest:
            self.say(f"mode: {self.mirror.config.mirror_mode} (choose {'|'.join(MIRROR_MODES)})")
            return
        if rest not in MIRROR_MODES:
            raise UsageError(f"/mode takes one of {', '.join(MIRROR_MODES)} (got {rest!r})")
        new = await self.mirror.set_mode(rest)
        self.say(f"mode: {new.mirror_mode}")


async def run_repl(
    mirror: Mirror, *, input: Input | None = None, output: Output | None = None
) -> None:
    """Run the interactive prompt until /quit, Ctrl-D or cancellation.

    *input* and *output* default to the terminal; tests pass a pipe input and a
    recording output.
    """
    if input is None and (sys.stdin is None or not sys.stdin.isatty()):
        raise UsageError("the interactive prompt needs a terminal; "
                         "to save text from a pipe, use: mirror reflect")
    with create_app_session(input=input, output=output), patch_stdout(raw=True):
        repl = Repl(mirror)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_close_prompt_when_cancelled, repl.terminal)
            nursery.start_soon(_watch_arrivals, repl)
            repl.nursery = nursery
            if mirror.config.sync_enabled:
                nursery.start_soon(repl._sync_until_off)
            await repl.run()
            nursery.cancel_scope.cancel()


async def _close_prompt_when_cancelled(terminal: _Terminal) -> None:
    try:
        await trio.sleep_forever()
    finally:
        terminal.close()


async def _sync_in_background(repl: Repl) -> None:
    """Run the node's sync like ``mirror serve`` while the prompt is open."""
    try:
        await repl.mirror.serve()
    except Exception as exc:
        log.exception("background sync failed")
        repl.say(f"error: sync stopped ({exc}); details in {repl.mirror.home.log_path}")


async def _watch_arrivals(repl: Repl) -> None:
    try:
        await repl.mirror.watch(repl.on_arrival)
    except Exception:
        log.exception("watching for other processes' reflections failed")
        repl.say("error: stopped looking for reflections from other processes "
                 f"(details in {repl.mirror.home.log_path})")
