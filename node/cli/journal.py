"""Journal commands: ``mirror init|reflect|list|show|edit|delete|export|compact|scrub|
status|mode``, each a call of the application layer and the lines that show its result."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import trio

from crdt.export import reflection_to_json
from crdt.journal import Reflection

from ..app import Mirror
from ..app.dates import parse_when
from ..app.exporting import EXPORT_FORMATS
from ..config import MIRROR_MODES
from ..drafts import edit_in_editor
from ..errors import ScrubIncompleteError, UsageError
from ..journal.arguments import add_filter_args, filter_of
from ..pager import page, terminal_size
from ..terminal import printable
from ..views.conventions import describe_filter
from ..views.journal import format_list_line, format_reflection, plural
from .options import AddCommand


def reflection_json(r: Reflection) -> dict[str, Any]:
    return reflection_to_json(r)


def show_notice(text: str) -> None:
    """An engine notice (the model failed; the offline mirrorback follows): one line
    on stderr; it is not part of the mirrorback that is printed and saved."""
    print(f"mirror: {text}", file=sys.stderr)


async def _read_text(mirror: Mirror, args: argparse.Namespace, stdin: TextIO) -> str:
    """The reflection: the arguments, else what is piped on stdin, else (on a
    terminal, like jrnl) what the person writes in $VISUAL or $EDITOR."""
    if args.text:
        return " ".join(args.text)
    if not stdin.isatty():
        return stdin.read()
    if not (os.environ.get("VISUAL") or os.environ.get("EDITOR") or "").strip():
        raise UsageError('give the reflection as text (mirror reflect "…"), pipe it on stdin, '
                         "or set $EDITOR to write it in your editor")

    def announce(draft: Path) -> None:
        print(f"mirror: writing in your editor; the draft is {draft} (yours only) and is "
              "removed when the editor closes", file=sys.stderr, flush=True)

    return await trio.to_thread.run_sync(edit_in_editor, mirror.home.path, "", announce)


async def cmd_init(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    status = await mirror.status()
    print(f"Mirror home: {status.home}", file=out)
    print(f"mode: {status.mirror_mode}, engine: {status.engine_mode}, "
          f"sync: {'on' if status.sync_enabled else 'off'}", file=out)
    print(f"{status.reflections} reflections", file=out)
    return 0


async def cmd_reflect(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    at = parse_when(args.at) if args.at else None
    text = await _read_text(mirror, args, sys.stdin)
    if not text.strip() and not args.text and sys.stdin.isatty():  # written in the editor
        print("mirror: nothing saved: the editor's text was empty", file=sys.stderr)
        return 0
    result = await mirror.write(text, tags=args.tag or (), private=args.private, at=at,
                                mirrorback=not args.no_mirrorback)
    for notice in result.notices:
        show_notice(notice)
    reflection = result.reflection
    if args.json:
        json.dump({"id": reflection.id, "mirrorback": result.mirrorback}, out)
        out.write("\n")
    else:
        print(f"saved {reflection.id}" + (" (private)" if reflection.private else ""), file=out)
        if result.mirrorback:
            print("", file=out)
            print(result.mirrorback, file=out)
    return 0


async def cmd_list(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    wanted = filter_of(args)
    found = await mirror.listing(wanted)
    if args.json:
        json.dump([reflection_json(r) for r in found.reflections], out, ensure_ascii=False,
                  indent=1)
        out.write("\n")
    elif not found.total:
        print("No reflections yet. Write one: mirror reflect \"…\"", file=out)
    elif not found.reflections:
        print(f"No reflection is {describe_filter(wanted)} ({plural(found.total, 'reflection')}"
              " in all: mirror list)", file=out)
    else:
        width = terminal_size(out)[0]
        page("\n".join(printable(format_list_line(r, width)) for r in found.reflections), out)
    return 0


async def cmd_show(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    r = await mirror.find(args.id)
    if args.json:
        json.dump(reflection_json(r), out, ensure_ascii=False, indent=1)
        out.write("\n")
    else:
        page(printable(format_reflection(r)), out)
    return 0


async def cmd_edit(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    text = args.text
    if text is None and args.tag is None:
        current = await mirror.find(args.id)

        def announce(draft: Path) -> None:
            print(f"mirror: the draft is {draft} (yours only); it is removed when the "
                  "editor closes", file=sys.stderr, flush=True)

        text = await trio.to_thread.run_sync(edit_in_editor, mirror.home.path, current.text,
                                             announce)
    result = await mirror.edit(args.id, text=text, tags=args.tag,
                               mirrorback=not args.no_mirrorback)
    if result.after is result.before:
        print("unchanged", file=out)
        return 0
    if result.scrub is not None and result.scrub.problem is not None:
        raise ScrubIncompleteError(result.scrub.problem)
    print(f"edited {result.after.id}", file=out)
    for notice in result.notices:
        show_notice(notice)
    if result.mirrorback:
        print("", file=out)
        print(result.mirrorback, file=out)
    return 0


async def cmd_delete(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    r = await mirror.find(args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("pass --yes to delete without asking")
        print(format_list_line(r), file=out)
        answer = await trio.to_thread.run_sync(input, "Delete this reflection? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            print("kept", file=out)
            return 1
    result = await mirror.delete(r.id)
    if result.scrub.problem is not None:
        raise ScrubIncompleteError(result.scrub.problem)
    print(f"deleted {result.reflection.id}", file=out)
    return 0


async def cmd_export(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    target = Path(args.path)
    result = await mirror.export(target, args.format)
    where = target if result.single_file else f"{target}/ ({len(result.files)} files)"
    print(f"exported {plural(result.reflections, 'reflection')} to {where}", file=out)
    return 0


async def cmd_scrub(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    outcome = await mirror.scrub()
    if outcome.problem is not None:
        raise ScrubIncompleteError(outcome.problem)
    print("scrubbed: nothing deleted is left in this device's store file", file=out)
    return 0


async def cmd_compact(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    results = await mirror.compact()
    if not results:
        print("nothing to compact", file=out)
    for r in results:
        print(f"{r.doc_id}: {r.updates_folded} updates, {r.bytes_before} → {r.bytes_after} bytes",
              file=out)
    return 0


async def cmd_status(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    status = await mirror.status()
    problem = status.config_problem
    data: dict[str, Any] = {
        "home": str(status.home),
        "mirror_mode": status.mirror_mode,
        "engine_mode": status.engine_mode,
        "engine": status.engine,
        "sync_enabled": status.sync_enabled,
        "reflections": status.reflections,
        "private_reflections": status.private_reflections,
        "documents": status.documents,
        "journal_sync_class": status.journal_sync_class,
        "store_bytes": status.store_bytes,
        "client_id": status.client_id,
    }
    if problem is not None:
        # What the file says, if it can be read; the node runs on the defaults meanwhile.
        written = status.written
        data.update(
            mirror_mode=written.mirror_mode if written else None,
            engine_mode=written.engine_mode if written else None,
            engine=f"{status.engine} (config.json invalid: the defaults are in use)",
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


async def cmd_mode(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    problem = mirror.settings().problem
    if args.mode is None:
        if problem is None:
            print(mirror.config.mirror_mode, file=out)
            return 0
        if problem.written is not None:
            print(problem.written.mirror_mode, file=out)
        print(f"mirror: {problem.error}; {problem.how_to_fix()}", file=sys.stderr)
        return 1
    new = await mirror.set_mode(args.mode)
    repaired = " (config.json is valid again)" if problem is not None else ""
    print(f"mode: {new.mirror_mode}{repaired}", file=out)
    return 0


def add_commands(add: AddCommand) -> None:
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
    p.add_argument("--format", choices=EXPORT_FORMATS,
                   help="default: what the name says (.json, .md), else json")
    p.add_argument("path", help="file (json, or markdown named .md) or folder (markdown)")
    add("compact", cmd_compact, "fold each document's update log into a verified snapshot")
    add("scrub", cmd_scrub, "remove what was deleted or edited away from this device's store "
        "file (after a delete or edit that could not finish it)")
    p = add("status", cmd_status, "show the home, the modes and what is stored")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("mode", cmd_mode, "show or set the mirror mode (local, hybrid, cloud)")
    p.add_argument("mode", nargs="?", choices=MIRROR_MODES)
