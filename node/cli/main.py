"""The ``mirror`` command.

Every failure is one line on stderr and a non-zero exit; tracebacks go to the
log file in the home. Heavy modules (prompt-toolkit, the engine's models) are
imported only by the commands that need them, so one-shot commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

import trio

from crdt import StoreError, ValueRangeError
from crdt.journal import Reflection

from ..config import MIRROR_MODES
from ..core import MirrorCore, open_core
from ..errors import ConfigError, MirrorError, UsageError
from ..files import write_private
from ..home import Home, setup_logging
from ..terminal import direct_stdio, printable, safe_stdio

log = logging.getLogger("mirror.cli")

DISTRIBUTION = "mirror-reflect"  # the name Mirror is installed under (pyproject.toml)

Handler = Callable[[MirrorCore, argparse.Namespace, TextIO], Awaitable[int]]
AddCommand = Callable[[str, Handler, str], argparse.ArgumentParser]

# Modules that contribute commands: each has ``add_commands(add: AddCommand)``.
# They must import only light modules at top level: every command pays for them.
COMMAND_MODULES: tuple[str, ...] = (
    "node.cli.sync", "node.cli.engine", "node.cli.data", "node.cli.update", "node.cli.store",
    "node.cli.commons", "node.cli.relay", "node.cli.mood", "node.cli.ask",
    "node.cli.conventions", "node.cli.ui",
)


# --------------------------------------------------------------------------- formatting


def parse_when(text: str) -> datetime:
    """A moment from what a person typed: ``2026-11-01``, ``2026-11-01 21:30``,
    ISO-8601, or natural words (``yesterday``, ``3 days ago``, ``last monday 21:30``,
    ``dec 1``: node/journal/dates.py). A day without a time is its midnight, a time
    without a zone is local time. Never in the future."""
    from ..journal.dates import DateParseError, parse_moment

    now = datetime.now(UTC)
    try:
        moment = parse_moment(text, now)
    except DateParseError as exc:
        raise UsageError(str(exc)) from None
    if moment > now:
        raise UsageError(f"{text!r} is in the future")
    return moment


def parse_until(text: str) -> datetime:
    """The end of what *text* names: ``--until 2026-11-01`` or ``--until yesterday``
    include that whole day, ``--until "yesterday 21:30"`` runs to that moment."""
    from ..journal.dates import DateParseError, parse_span

    try:
        return parse_span(text, datetime.now(UTC)).end
    except DateParseError as exc:
        raise UsageError(str(exc)) from None


def short_line(text: str, width: int = 72) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


LINE_COLUMNS = 80  # what a listing fits when the terminal does not say


def format_list_line(r: Reflection, width: int = LINE_COLUMNS) -> str:
    """One reflection on one line of at most *width* columns: id, local time, ★ if
    starred, 🔒 if private, the start of its text, its tags."""
    from ..pager import display_width, fit

    local = r.created_at.astimezone()
    flags = ("★" if r.starred else " ") + ("🔒" if r.private else "  ")
    head = f"{r.id[:8]}  {local:%Y-%m-%d %H:%M} {flags} "
    tags = (" " + " ".join(f"#{t}" for t in r.tags)) if r.tags else ""
    room = width - display_width(head)
    flat = " ".join(r.text.split())
    if tags and display_width(tags) > room // 2:
        tags = fit(tags, room // 2)
    return head + fit(flat, room - display_width(tags)) + tags


def format_reflection(r: Reflection) -> str:
    local = r.created_at.astimezone()
    lines = [f"{r.id}  {local:%A %Y-%m-%d %H:%M}" + ("  ★ starred" if r.starred else "")
             + ("  (private)" if r.private else "")]
    if r.tags:
        lines.append("tags: " + " ".join(f"#{t}" for t in r.tags))
    if r.edited_at:
        lines.append(f"edited {r.edited_at.astimezone():%Y-%m-%d %H:%M}")
    lines += ["", r.text]
    if r.mirrorback:
        lines += ["", f"— mirrorback ({r.mirrorback.engine})", r.mirrorback.text]
    return "\n".join(lines)


def reflection_json(r: Reflection) -> dict[str, Any]:
    from crdt.export import reflection_to_json

    return reflection_to_json(r)


# --------------------------------------------------------------------------- commands


async def cmd_init(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    counts = await core.counts()
    print(f"Mirror home: {core.home.path}", file=out)
    print(f"mode: {core.config.mirror_mode}, engine: {core.config.engine_mode}, "
          f"sync: {'on' if core.config.sync_enabled else 'off'}", file=out)
    print(f"{counts.reflections} reflections", file=out)
    return 0


async def _read_text(core: MirrorCore, args: argparse.Namespace, stdin: TextIO) -> str:
    """The reflection: the arguments, else what is piped on stdin, else (on a
    terminal, like jrnl) what the person writes in $VISUAL or $EDITOR."""
    if args.text:
        return " ".join(args.text)
    if not stdin.isatty():
        return stdin.read()
    if not (os.environ.get("VISUAL") or os.environ.get("EDITOR") or "").strip():
        raise UsageError('give the reflection as text (mirror reflect "…"), pipe it on stdin, '
                         "or set $EDITOR to write it in your editor")
    from ..drafts import edit_in_editor

    def announce(draft: Path) -> None:
        print(f"mirror: writing in your editor; the draft is {draft} (yours only) and is "
              "removed when the editor closes", file=sys.stderr, flush=True)

    return await trio.to_thread.run_sync(edit_in_editor, core.home.path, "", announce)


def show_notice(text: str) -> None:
    """An engine notice (the model failed; the offline mirrorback follows): one line
    on stderr, now; it is not part of the mirrorback that is printed and saved."""
    print(f"mirror: {text}", file=sys.stderr)


async def cmd_reflect(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    at = parse_when(args.at) if args.at else None
    text = await _read_text(core, args, sys.stdin)
    if not text.strip() and not args.text and sys.stdin.isatty():  # written in the editor
        print("mirror: nothing saved: the editor's text was empty", file=sys.stderr)
        return 0
    reflection = await core.reflect(text, tags=args.tag or (), private=args.private, at=at)
    mirrorback = "" if args.no_mirrorback else await core.mirror(reflection, show_notice)
    if args.json:
        json.dump({"id": reflection.id, "mirrorback": mirrorback or None}, out)
        out.write("\n")
    else:
        print(f"saved {reflection.id}" + (" (private)" if reflection.private else ""), file=out)
        if mirrorback:
            print("", file=out)
            print(mirrorback, file=out)
    return 0


async def cmd_list(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from ..app import Mirror
    from ..pager import page, terminal_size
    from .conventions import describe_filter, filter_of

    wanted = filter_of(args)
    listing = await Mirror(core).listing(wanted)
    items, everything = listing.reflections, listing.total
    if args.json:
        json.dump([reflection_json(r) for r in items], out, ensure_ascii=False, indent=1)
        out.write("\n")
    elif not everything:
        print("No reflections yet. Write one: mirror reflect \"…\"", file=out)
    elif not items:
        noun = "reflection" if everything == 1 else "reflections"
        print(f"No reflection is {describe_filter(wanted)} ({everything} {noun} in all: "
              "mirror list)", file=out)
    else:
        width = terminal_size(out)[0]
        page("\n".join(printable(format_list_line(r, width)) for r in items), out)
    return 0


async def cmd_show(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    _, r = await core.journal.find(args.id)
    if args.json:
        json.dump(reflection_json(r), out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        print(format_reflection(r), file=out)
    return 0


async def cmd_edit(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    _, current = await core.journal.find(args.id)
    text = args.text
    if text is None and args.tag is None:
        from ..drafts import edit_in_editor

        def announce(draft: Path) -> None:
            print(f"mirror: the draft is {draft} (yours only); it is removed when the "
                  "editor closes", file=sys.stderr, flush=True)

        text = await trio.to_thread.run_sync(edit_in_editor, core.home.path, current.text,
                                             announce)
    if text is not None and text.strip() == current.text and args.tag is None:
        print("unchanged", file=out)
        return 0
    updated = await core.edit(current.id, text=text, tags=args.tag)
    print(f"edited {updated.id}", file=out)
    if updated.text != current.text and current.mirrorback is not None:
        # The old mirrorback quoted the old words and was removed with them.
        mirrorback = "" if args.no_mirrorback else await core.mirror(updated, show_notice)
        if mirrorback:
            print("", file=out)
            print(mirrorback, file=out)
    return 0


async def cmd_delete(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    _, r = await core.journal.find(args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("pass --yes to delete without asking")
        print(format_list_line(r), file=out)
        answer = await trio.to_thread.run_sync(input, "Delete this reflection? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("kept", file=out)
            return 1
    await core.delete(r.id)
    print(f"deleted {r.id}", file=out)
    return 0


EXPORT_SUFFIXES = {".json": "json", ".md": "markdown", ".markdown": "markdown"}


def export_format(fmt: str | None, target: Path) -> str:
    """The format to write *target* in: the one asked for, else the one its name
    says (``.json``, ``.md``), else JSON. A name that says another format than
    the one asked for is refused: nobody wants JSON in ``journal.md``."""
    named = EXPORT_SUFFIXES.get(target.suffix.lower())
    if fmt is None:
        return named or "json"
    if named is not None and named != fmt:
        fix = (f"name it {target.with_suffix('.json').name}" if fmt == "json" else
               f"name it {target.with_suffix('.md').name} (one file) or a folder (one file "
               "per month)")
        raise UsageError(f"{target.name} is named like a {named} file but the format is "
                         f"{fmt}: {fix}, or leave out --format")
    return fmt


def is_single_markdown_file(target: Path) -> bool:
    return EXPORT_SUFFIXES.get(target.suffix.lower()) == "markdown"


async def write_export(core: MirrorCore, fmt: str | None, target: Path) -> list[Path]:
    """Write an export of everything: JSON to a file; Markdown to one ``.md`` file,
    or into a folder with one file per month. *fmt* None: the format the name says."""
    from crdt.export import export_json, export_markdown

    fmt = export_format(fmt, target)
    if fmt == "json":
        data = await export_json(core.store)
        files = {"": json.dumps(data, ensure_ascii=False, indent=1) + "\n"}
    else:
        files = await export_markdown(core.store)
    return await trio.to_thread.run_sync(_write_export_files, fmt, target, files)


def _write_export_files(fmt: str, target: Path, files: dict[str, str]) -> list[Path]:
    target = target.expanduser()
    if not target.absolute().parent.is_dir():
        raise UsageError(f"{target.parent}: no such directory")
    try:
        return _write_export_files_unchecked(fmt, target, files)
    except OSError as exc:
        raise MirrorError(f"{exc.filename or target}: cannot write ({exc.strerror})") from None


def _write_export_files_unchecked(fmt: str, target: Path, files: dict[str, str]) -> list[Path]:
    if fmt == "json":
        if target.is_dir():
            raise UsageError(f"{target}: is a directory (json writes one file)")
        _write_private_file(target, files[""])
        return [target]
    if is_single_markdown_file(target):
        if target.is_dir():
            raise UsageError(f"{target}: is a directory (a .md name writes one file)")
        _write_private_file(target, "\n\n".join(files[name] for name in sorted(files)))
        return [target]
    if target.exists() and not target.is_dir():
        raise UsageError(f"{target}: exists and is not a directory (markdown writes a folder)")
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        _write_private_file(target / name, text)
        written.append(target / name)
    return written


def _write_private_file(path: Path, text: str) -> None:
    write_private(path, text)


async def cmd_export(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    target = Path(args.path)
    fmt = export_format(args.format, target)
    written = await write_export(core, fmt, target)
    count = await core.counts()
    single = fmt == "json" or is_single_markdown_file(target)
    where = target if single else f"{target}/ ({len(written)} files)"
    noun = "reflection" if count.reflections == 1 else "reflections"
    print(f"exported {count.reflections} {noun} to {where}", file=out)
    return 0


async def cmd_scrub(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    await core.scrub()
    print("scrubbed: nothing deleted is left in this device's store file", file=out)
    return 0


async def cmd_compact(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    results = await core.store.compact()
    if not results:
        print("nothing to compact", file=out)
    for r in results:
        print(f"{r.doc_id}: {r.updates_folded} updates, {r.bytes_before} → {r.bytes_after} bytes",
              file=out)
    return 0


async def cmd_status(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    problem = core.config_problem
    counts = await core.counts()
    stats = core.store.statistics()
    db_bytes = sum(
        p.stat().st_size
        for p in core.home.path.glob("mirror.db*")
        if p.is_file()
    )
    data = {
        "home": str(core.home.path),
        "mirror_mode": core.config.mirror_mode,
        "engine_mode": core.config.engine_mode,
        "engine": core.engine.name,
        "sync_enabled": core.config.sync_enabled,
        "reflections": counts.reflections,
        "private_reflections": counts.private,
        "documents": counts.documents,
        "journal_sync_class": core.journal.share_class.value,
        "store_bytes": db_bytes,
        "client_id": stats.client_id,
    }
    if problem is not None:
        # What the file says, if it can be read; the node runs on the defaults meanwhile.
        written = problem.written
        data.update(
            mirror_mode=written.mirror_mode if written else None,
            engine_mode=written.engine_mode if written else None,
            engine=f"{core.engine.name} (config.json invalid: the defaults are in use)",
            sync_enabled=written.sync_enabled if written else None,
            config_error=str(problem.error),
            config_fix=problem.how_to_fix(),
        )
    if args.json:
        json.dump(data, out, indent=1)
        out.write("\n")
    else:
        for key, value in data.items():
            print(f"{key.replace('_', ' ')}: {value}", file=out)
    if problem is not None:
        print(f"mirror: {problem.error}; {problem.how_to_fix()}", file=sys.stderr)
        return 1
    return 0


async def cmd_mode(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    problem = core.config_problem
    if args.mode is None:
        if problem is None:
            print(core.config.mirror_mode, file=out)
            return 0
        if problem.written is not None:
            print(problem.written.mirror_mode, file=out)
        print(f"mirror: {problem.error}; {problem.how_to_fix()}", file=sys.stderr)
        return 1
    new = core.config_to_change().with_changes(mirror_mode=args.mode)
    core.save_config(new)
    repaired = " (config.json is valid again)" if problem is not None else ""
    print(f"mode: {new.mirror_mode}{repaired}", file=out)
    return 0


async def cmd_repl(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from ..repl.prompt import run_repl

    with direct_stdio():  # prompt-toolkit draws; the REPL filters what it shows itself
        await run_repl(core)
    return 0


# --------------------------------------------------------------------------- parser


class OneLineParser(argparse.ArgumentParser):
    """Wrong arguments are one line on stderr (exit status 2), like every failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (for --limit N and the like)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value


def mirror_version() -> str:
    """The installed version of Mirror ("unknown" when run from an uninstalled tree)."""
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="mirror",
        description="Mirror: write reflections; your own machine reflects them back. "
        "With no command, starts the interactive prompt.",
    )
    parser.add_argument("--home", help="the node's home directory (default: $MIRROR_HOME "
                        "or your user data directory)")
    parser.add_argument("--verbose", action="store_true", help="more detail in the log file")
    parser.add_argument("--passphrase-file", metavar="FILE",
                        help="passphrase of an encrypted home or backup (first line of FILE; "
                        "or set MIRROR_PASSPHRASE)")
    parser.add_argument("--version", action="version", version=f"mirror {mirror_version()}")
    parser.set_defaults(handler=cmd_repl)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    p = add("init", cmd_init, "create the home if needed and show where it is")
    p.add_argument("--passphrase", action="store_true", dest="init_passphrase",
                   help="encrypt the new home's store at rest with a passphrase")
    p = add("reflect", cmd_reflect, "save a reflection and show its mirrorback")
    p.add_argument("text", nargs="*", help="the reflection (or pipe it on stdin)")
    p.add_argument("--private", action="store_true",
                   help="keep it on this device whatever is shared")
    p.add_argument("--tag", action="append", metavar="TAG", help="a tag (repeatable)")
    p.add_argument("--at", metavar="DATETIME",
                   help='when it was written, e.g. yesterday, "last monday 21:30", '
                   '"3 days ago", dec 1, 2026-11-01T21:30')
    p.add_argument("--no-mirrorback", action="store_true", help="save without a mirrorback")
    p.add_argument("--json", action="store_true", help="print {id, mirrorback} as JSON")
    p = add("list", cmd_list, "list reflections, oldest first (★ starred, 🔒 private); "
            "dates can be natural: --from \"2 weeks ago\", --on yesterday")
    p.add_argument("--json", action="store_true", help="print JSON")
    from .conventions import add_filter_args

    add_filter_args(p)
    p = add("show", cmd_show, "show one reflection and its mirrorback")
    p.add_argument("id", help="the id, or a unique prefix of at least 4 characters")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("edit", cmd_edit, "change a reflection's text (in $EDITOR, or with --text) or "
            "tags; the engine learns it again. The editor's draft is kept in the home's "
            "drafts/ folder, readable by you only, and removed afterwards")
    p.add_argument("id", help="the id, or a unique prefix")
    p.add_argument("--text", help="the new text")
    p.add_argument("--tag", action="append", metavar="TAG", help="replace the tags (repeatable)")
    p.add_argument("--no-mirrorback", action="store_true",
                   help="when the text changes, do not ask for a new mirrorback (the old one, "
                   "which quoted the old words, is removed either way)")
    p = add("delete", cmd_delete, "delete a reflection and all the engine learned from it")
    p.add_argument("id", help="the id, or a unique prefix")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p = add("export", cmd_export, "export everything: JSON (one file), Markdown (one .md "
            "file, or a folder with one file per month)")
    p.add_argument("--format", choices=("json", "markdown"),
                   help="default: what the name says (.json, .md), else json")
    p.add_argument("path", help="file (json, or markdown named .md) or folder (markdown)")
    add("compact", cmd_compact, "fold each document's update log into a verified snapshot")
    add("scrub", cmd_scrub, "remove what was deleted or edited away from this device's store "
        "file (after a delete or edit that could not finish it)")
    p = add("status", cmd_status, "show the home, the modes and what is stored")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(config_tolerant=True)  # runs, and explains, with an invalid config.json
    p = add("mode", cmd_mode, "show or set the mirror mode (local, hybrid, cloud)")
    p.add_argument("mode", nargs="?", choices=MIRROR_MODES)
    p.set_defaults(config_tolerant=True)
    add("repl", cmd_repl, "start the interactive prompt (the default)")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(add)
    return parser


async def run(args: argparse.Namespace, out: TextIO) -> int:
    from .data import unlock_home

    home = Home.resolve(args.home)
    home_handler = getattr(args, "home_handler", None)
    if home_handler is not None:  # commands that work on the home's files, not an open core
        result: int = await home_handler(home, args, out)
        return result
    cipher = await unlock_home(home, args)
    async with open_core(home, cipher=cipher, tolerate_bad_config=True) as core:
        problem = core.config_problem
        if problem is not None and not getattr(args, "config_tolerant", False):
            raise ConfigError(f"{problem.error} (mirror status explains; mirror mode and "
                              "mirror engine still work)")
        status: int = await args.handler(core, args, out)
        return status


def main(argv: Sequence[str] | None = None) -> int:
    # Every line the program prints goes through one filter: text from elsewhere
    # (synced or imported reflections, Commons posts, device names, server
    # messages) never drives the terminal (node.terminal).
    with safe_stdio():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        home = Home.resolve(args.home)
        setup_logging(home, verbose=args.verbose)
        status = trio.run(run, args, sys.stdout)
    except BrokenPipeError:
        # the reader went away (mirror list | head): not an error; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("mirror: interrupted", file=sys.stderr)
        return 130
    except (MirrorError, StoreError, ValueRangeError) as exc:
        log.info("command failed: %s", exc, exc_info=True)
        print(f"mirror: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", 1)
    except Exception as exc:
        log.exception("unexpected error")
        where = Home.resolve(args.home).log_path
        print(f"mirror: unexpected error ({type(exc).__name__}); details in {where}",
              file=sys.stderr)
        return 70
    sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
