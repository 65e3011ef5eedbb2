"""Commons commands: ``mirror commons add|post|read|comment|react``, ``mirror publish``,
``mirror published``, ``mirror unpublish``.

Every question asked interactively also takes its answer as a flag
(``--title``, ``--body``, ``--yes``) so scripts never block on a prompt.
Nothing leaves the device before the person has seen exactly what will be
published and confirmed it (or passed ``--yes``); the operations are the
application layer's (:mod:`node.app.commons`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any, TextIO

from crdt.commons import CommonsItem

from ..app import Mirror
from ..app.commons import CommonsSyncOutcome, short_id
from ..errors import UsageError
from ..views.commons import one_line, render_thread, render_threads
from .options import AddCommand


def _ask(prompt: str, out: TextIO) -> str:
    print(prompt, end="", file=out, flush=True)
    line = sys.stdin.readline()
    if not line:
        raise UsageError("no answer on stdin (give it as a flag, e.g. --title, --body, --yes)")
    return line.rstrip("\n")


def _confirm(args: argparse.Namespace, question: str, out: TextIO) -> bool:
    if getattr(args, "yes", False):
        return True
    return _ask(f"{question} [y/N] ", out).strip().lower() in ("y", "yes")


def _say_sync(sync: CommonsSyncOutcome | None, out: TextIO, *, quiet_offline: bool = False) -> None:
    """The one-line notes of a sync: offline, or withdrawn items not checked."""
    if sync is None:
        return
    if sync.offline is not None and not quiet_offline:
        print(f"(offline: {sync.offline}; showing what is cached on this device)", file=out)
    if sync.warning is not None:
        print(f"(could not check for withdrawn or moderated items: {sync.warning}; "
              "cached copies of them stay until a later sync)", file=out)


async def _publish(mirror: Mirror, kind: str, fields: dict[str, str], what: str,
                   summary: str, out: TextIO) -> int:
    done = await mirror.commons_publish(kind, fields, what=what, summary=summary)
    _say_sync(done.sync, out, quiet_offline=True)
    if not done.sent:
        print(f"saved {short_id(done.doc_id)} on this device; {done.server} is unreachable — "
              "it will be sent at the next 'mirror commons read'", file=out)
        return 1
    print(f"published {short_id(done.doc_id)} to {done.server}", file=out)
    return 0


def _item_json(item: CommonsItem) -> dict[str, Any]:
    return asdict(item)


async def cmd_commons(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    raise UsageError("mirror commons needs an action: add, post, read, comment or react")


async def cmd_add(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    server = await mirror.commons_add_server(args.url, server_key=args.server_key)
    print(f"added {server.url} (server key {server.server_key.hex()[:16]}…); it is now the default",
          file=out)
    return 0


async def cmd_post(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    title = args.title if args.title is not None else _ask("Title: ", out)
    body = args.body if args.body is not None else _ask("Body: ", out)
    fields = mirror.commons_check("post", {"title": title, "body": body})
    server = mirror.commons_server()
    print(f"This post will be public on {server.url}, signed by your author key:", file=out)
    print(f"  title: {one_line(title, 70)}", file=out)
    print(f"  body:  {len(body)} characters", file=out)
    if not _confirm(args, "Publish it?", out):
        print("not published", file=out)
        return 1
    return await _publish(mirror, "post", fields, "post", title, out)


async def _thread_for(mirror: Mirror, ref: str, out: TextIO) -> CommonsItem:
    thread, sync = await mirror.commons_thread(ref)
    _say_sync(sync, out)
    return thread


async def cmd_comment(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    thread = await _thread_for(mirror, args.thread, out)
    body = args.body if args.body is not None else _ask("Comment: ", out)
    fields = mirror.commons_check("comment", {"body": body, "thread": thread.doc_id})
    print(f"This comment on “{one_line(thread.title, 50)}” will be public "
          f"({len(body)} characters).", file=out)
    if not _confirm(args, "Publish it?", out):
        print("not published", file=out)
        return 1
    return await _publish(mirror, "comment", fields, "comment", body, out)


async def cmd_react(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    thread = await _thread_for(mirror, args.thread, out)
    fields = mirror.commons_check("reaction", {"reaction": args.reaction,
                                               "thread": thread.doc_id})
    if not _confirm(args, f"React {args.reaction} to “{one_line(thread.title, 50)}” "
                    "publicly?", out):
        print("not published", file=out)
        return 1
    return await _publish(mirror, "reaction", fields, "reaction", args.reaction, out)


async def cmd_read(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    view = await mirror.commons_read(args.thread, offline=args.offline)
    # With --json, notes go to stderr: standard output stays one JSON value.
    _say_sync(view.sync, sys.stderr if args.json else out)
    report = view.sync.report if view.sync is not None else None
    if report is not None and report.forgotten and not args.json:
        print(f"({report.forgotten} withdrawn or moderated item(s) deleted from this "
              "device's cache)", file=out)
    items = list(view.items)
    if view.thread is not None:
        if args.json:
            related = [_item_json(i) for i in view.in_thread()]
            json.dump({"thread": _item_json(view.thread), "items": related}, out,
                      ensure_ascii=False)
            out.write("\n")
        else:
            print(render_thread(view.thread, items), file=out)
        return 0
    if args.json:
        json.dump([_item_json(i) for i in items], out, ensure_ascii=False)
        out.write("\n")
    else:
        print(render_threads(items), file=out)
    return 0


async def cmd_publish(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    # Shared scope: derived from reflections not marked private, and only its summary.
    title, body = await mirror.commons_insight(args.kind, args.id)
    server = mirror.commons_server()
    print(f"Exactly this will leave this device, public on {server.url}:", file=out)
    print(f"  title: {title}", file=out)
    for line in body.splitlines():
        print(f"  {line}", file=out)
    print("No reflection text and no evidence is included.", file=out)
    if not _confirm(args, "Publish it?", out):
        print("not published", file=out)
        return 1
    return await _publish(mirror, "insight", {"title": title, "body": body}, args.kind, title,
                          out)


async def cmd_published(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    entries = await mirror.published()
    if args.json:
        json.dump([e.__dict__ for e in entries], out, ensure_ascii=False)
        out.write("\n")
        return 0
    if not entries:
        print("Nothing published.", file=out)
        return 0
    for e in entries:
        state = (f"withdrawn {e.withdrawn_at}" if e.withdrawn_at
                 else f"sent {e.sent_at}" if e.sent_at else "not sent yet")
        print(f"{short_id(e.doc_id)}  {e.what:8} {e.published_at}  {e.server}  {state}  "
              f"{one_line(e.summary, 40)}", file=out)
    return 0


async def cmd_unpublish(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    entry = await mirror.published_entry(args.id)
    if entry.withdrawn_at:
        print(f"{short_id(entry.doc_id)} was already withdrawn {entry.withdrawn_at}", file=out)
        return 0
    if not _confirm(args, f"Withdraw {short_id(entry.doc_id)} from {entry.server}?", out):
        print("nothing withdrawn", file=out)
        return 1
    done = await mirror.unpublish(args.id)
    if not done.held:
        print(f"withdrawn {short_id(entry.doc_id)}: {entry.server} never held it "
              "(nothing to delete there)", file=out)
    else:
        print(f"withdrawn {short_id(entry.doc_id)}: {entry.server} deleted it", file=out)
    return 0


def add_commands(add: AddCommand) -> None:
    p = add("commons", cmd_commons, "the Commons: public threads, posts, comments and reactions")
    sub = p.add_subparsers(title="actions", metavar="ACTION")

    def action(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        q = sub.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(handler=handler)
        return q

    q = action("add", cmd_add, "add a Commons server (and make it the default)")
    q.add_argument("url", help="e.g. https://commons.example.org")
    q.add_argument("--server-key", help="the server key you expect (64 hex digits)")
    q = action("post", cmd_post, "start a public thread")
    q.add_argument("--title")
    q.add_argument("--body")
    q.add_argument("--yes", action="store_true", help="publish without asking")
    q = action("read", cmd_read, "list threads, or show one (works offline from the cache)")
    q.add_argument("thread", nargs="?", help="a thread id (or a unique prefix)")
    q.add_argument("--json", action="store_true")
    q.add_argument("--offline", action="store_true", help="show the cache; do not connect")
    q = action("comment", cmd_comment, "comment on a thread")
    q.add_argument("thread")
    q.add_argument("--body")
    q.add_argument("--yes", action="store_true", help="publish without asking")
    q = action("react", cmd_react, "react to a thread (a short word or emoji)")
    q.add_argument("thread")
    q.add_argument("reaction")
    q.add_argument("--yes", action="store_true", help="publish without asking")
    p = add("publish", cmd_publish, "publish a summary of a pattern or tension (asks first)")
    p.add_argument("kind", choices=("pattern", "tension"))
    p.add_argument("id", help="the pattern's or tension's key (see --json of patterns/tensions)")
    p.add_argument("--yes", action="store_true", help="publish without asking")
    p = add("published", cmd_published, "what you published, where and when (the consent ledger)")
    p.add_argument("--json", action="store_true")
    p = add("unpublish", cmd_unpublish, "withdraw a published item: the server deletes it")
    p.add_argument("id", help="the item's id (or a unique prefix), see 'mirror published'")
    p.add_argument("--yes", action="store_true", help="withdraw without asking")
