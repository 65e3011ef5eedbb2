"""Commons commands: ``mirror commons add|post|read|comment|react``, ``mirror publish``,
``mirror published``, ``mirror unpublish``; and the REPL's ``/commons``.

Every question asked interactively also takes its answer as a flag
(``--title``, ``--body``, ``--yes``) so scripts never block on a prompt.
Nothing leaves the device before the person has seen exactly what will be
published and confirmed it (or passed ``--yes``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import MirrorError, UsageError

if TYPE_CHECKING:
    from crdt.commons import Item

    from ..commons.home import CommonsServer
    from ..commons.sync import SyncReport
    from ..core import MirrorCore

AddCommand = Callable[..., argparse.ArgumentParser]

REPL_COMMANDS: dict[str, tuple[str, str]] = {
    "commons": ("[THREAD]", "read the Commons (cached; refreshed when the server is reachable)"),
}


# --------------------------------------------------------------------------- helpers


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


def _server(core: MirrorCore) -> CommonsServer:
    from ..commons.home import ServerList
    from ..config import is_loopback_or_lan

    server = ServerList(core.home.path).default()
    _check_mode(core, server.url, is_loopback_or_lan)
    return server


def _check_mode(core: MirrorCore, url: str, is_near: Callable[[str], bool]) -> None:
    if core.config.mirror_mode == "local" and not is_near(url):
        raise UsageError(
            f"local mode opens no connection beyond this machine and the LAN ({url}); "
            "switch with 'mirror mode hybrid' to use a public Commons server")


async def _sync(core: MirrorCore, out: TextIO, *, quiet_offline: bool = False) -> SyncReport | None:
    """Sync with the default server; None (and a one-line note) when it is unreachable."""
    from ..commons.home import AuthorKeys, ConsentLedger
    from ..commons.sync import CommonsUnavailable, forget_withdrawn, sync_commons

    server = _server(core)
    ledger = await ConsentLedger.open(core.store)
    try:
        report = await sync_commons(core.store, server, AuthorKeys(core.home.path),
                                    ledger.withdrawn())
    except CommonsUnavailable as exc:
        if not quiet_offline:
            print(f"(offline: {exc}; showing what is cached on this device)", file=out)
        return None
    try:
        report.forgotten = await forget_withdrawn(core.store, server, AuthorKeys(core.home.path))
    except CommonsUnavailable as exc:  # the sync itself succeeded: note it, go on
        print(f"(could not check for withdrawn or moderated items: {exc}; "
              "cached copies of them stay until a later sync)", file=out)
    sent_at = _now()
    for doc_id in report.sent:
        entry = ledger.get(doc_id)
        if entry is not None and not entry.sent_at:
            from dataclasses import replace

            ledger.record(replace(entry, sent_at=sent_at))
    await core.store.wait_durable()
    return report


def _now() -> str:
    from crdt.values import format_timestamp, utc_now

    return format_timestamp(utc_now())


async def _publish(core: MirrorCore, kind: str, fields: dict[str, str], what: str,
                   summary: str, out: TextIO) -> int:
    from ..commons.home import AuthorKeys, ConsentLedger, LedgerEntry, create_item

    server = _server(core)
    author = AuthorKeys(core.home.path).default()
    stored = await create_item(core.store, author, kind, fields)
    ledger = await ConsentLedger.open(core.store)
    ledger.record(LedgerEntry(stored.doc_id, what, summary[:120], server.url, _now()))
    await core.store.wait_durable()
    report = await _sync(core, out, quiet_offline=True)
    if report is None:
        print(f"saved {_short(stored.doc_id)} on this device; {server.url} is unreachable — "
              "it will be sent at the next 'mirror commons read'", file=out)
        return 1
    print(f"published {_short(stored.doc_id)} to {server.url}", file=out)
    return 0


def _short(doc_id: str) -> str:
    return doc_id.rsplit("/", 1)[-1]


def _resolve(items: list[Item], ref: str) -> Item:
    ref = ref.strip().removeprefix("/")
    hits = [i for i in items if i.doc_id == ref or i.doc_id.endswith("/" + ref)
            or _short(i.doc_id).startswith(ref) or i.doc_id.removeprefix("commons/") == ref]
    threads = [i for i in hits if i.kind in ("post", "insight")] or hits
    if not threads:
        raise UsageError(f"no cached thread matches {ref!r} (try 'mirror commons read')")
    if len(threads) > 1:
        raise UsageError(f"{ref!r} matches {len(threads)} items; give more of the id")
    return threads[0]


def render_threads(items: list[Item]) -> str:
    threads = sorted((i for i in items if i.kind in ("post", "insight")),
                     key=lambda i: (i.created_at, i.doc_id), reverse=True)
    if not threads:
        return "No threads yet: start one with 'mirror commons post'."
    comments: dict[str, int] = {}
    for i in items:
        if i.kind == "comment":
            comments[i.thread] = comments.get(i.thread, 0) + 1
    return "\n".join(
        f"{_short(t.doc_id)}  {t.created_at[:16]:16}  {t.author[:8]}  "
        f"{_one_line(t.title, 50)}  ({comments.get(t.doc_id, 0)} comments)"
        for t in threads)


def render_thread(thread: Item, items: list[Item]) -> str:
    lines = [thread.title, f"{thread.kind} by {thread.author[:12]} · {thread.created_at}", "",
             thread.body]
    reactions: dict[str, int] = {}
    for i in items:
        if i.kind == "reaction" and i.thread == thread.doc_id:
            reactions[i.reaction] = reactions.get(i.reaction, 0) + 1
    if reactions:
        lines += ["", "  ".join(f"{k} {v}" for k, v in sorted(reactions.items()))]
    comments = sorted((i for i in items if i.kind == "comment" and i.thread == thread.doc_id),
                      key=lambda i: (i.created_at, i.doc_id))
    lines += ["", f"{len(comments)} comments"]
    for c in comments:
        lines += [f"  — {c.author[:12]} · {c.created_at}", *("    " + x for x in
                                                           c.body.splitlines() or [""])]
    return "\n".join(lines)


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _item_json(item: Item) -> dict[str, Any]:
    return asdict(item)


# --------------------------------------------------------------------------- commands


async def cmd_commons(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    raise UsageError("mirror commons needs an action: add, post, read, comment or react")


async def cmd_add(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from ..commons.home import CommonsServer, ServerList, normalise_url
    from ..commons.sync import fetch_info
    from ..config import is_loopback_or_lan

    url = normalise_url(args.url)
    _check_mode(core, url, is_loopback_or_lan)
    info = await fetch_info(url)
    key = bytes.fromhex(info["server_key"])
    if args.server_key and args.server_key.lower() != key.hex():
        raise MirrorError(f"{url} has server key {key.hex()[:16]}…, not the one given")
    ServerList(core.home.path).add(CommonsServer(url, key))
    print(f"added {url} (server key {key.hex()[:16]}…); it is now the default", file=out)
    return 0


async def cmd_post(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from crdt.commons import CommonsError, check_fields

    title = args.title if args.title is not None else _ask("Title: ", out)
    body = args.body if args.body is not None else _ask("Body: ", out)
    try:
        check_fields("post", {"title": title, "body": body})
    except CommonsError as exc:
        raise UsageError(str(exc)) from None
    server = _server(core)
    print(f"This post will be public on {server.url}, signed by your author key:", file=out)
    print(f"  title: {_one_line(title, 70)}", file=out)
    print(f"  body:  {len(body)} characters", file=out)
    if not _confirm(args, "Publish it?", out):
        print("not published", file=out)
        return 1
    return await _publish(core, "post", {"title": title, "body": body}, "post", title, out)


async def _thread_for(core: MirrorCore, ref: str, out: TextIO) -> Item:
    from ..commons.home import ConsentLedger, load_cache

    ledger = await ConsentLedger.open(core.store)
    items = await load_cache(core.store, ledger.withdrawn())
    try:
        return _resolve(items, ref)
    except UsageError:
        await _sync(core, out)
        return _resolve(await load_cache(core.store, ledger.withdrawn()), ref)


async def cmd_comment(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from crdt.commons import CommonsError, check_fields

    thread = await _thread_for(core, args.thread, out)
    body = args.body if args.body is not None else _ask("Comment: ", out)
    try:
        check_fields("comment", {"body": body, "thread": thread.doc_id})
    except CommonsError as exc:
        raise UsageError(str(exc)) from None
    print(f"This comment on “{_one_line(thread.title, 50)}” will be public "
          f"({len(body)} characters).", file=out)
    if not _confirm(args, "Publish it?", out):
        print("not published", file=out)
        return 1
    return await _publish(core, "comment", {"body": body, "thread": thread.doc_id}, "comment",
                          body, out)


async def cmd_react(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from crdt.commons import CommonsError, check_fields

    thread = await _thread_for(core, args.thread, out)
    try:
        check_fields("reaction", {"reaction": args.reaction, "thread": thread.doc_id})
    except CommonsError as exc:
        raise UsageError(str(exc)) from None
    if not _confirm(args, f"React {args.reaction} to “{_one_line(thread.title, 50)}” "
                    "publicly?", out):
        print("not published", file=out)
        return 1
    return await _publish(core, "reaction", {"reaction": args.reaction, "thread": thread.doc_id},
                          "reaction", args.reaction, out)


async def cmd_read(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from ..commons.home import ConsentLedger, ServerList, load_cache

    if not args.offline and ServerList(core.home.path).all():
        # With --json, notes go to stderr: standard output stays one JSON value.
        report = await _sync(core, sys.stderr if args.json else out)
        if report is not None and report.forgotten and not args.json:
            print(f"({report.forgotten} withdrawn or moderated item(s) deleted from this "
                  "device's cache)", file=out)
    ledger = await ConsentLedger.open(core.store)
    items = await load_cache(core.store, ledger.withdrawn())
    if args.thread:
        thread = _resolve(items, args.thread)
        if args.json:
            related = [_item_json(i) for i in items if i.thread == thread.doc_id]
            json.dump({"thread": _item_json(thread), "items": related}, out, ensure_ascii=False)
            out.write("\n")
        else:
            print(render_thread(thread, items), file=out)
        return 0
    if args.json:
        json.dump([_item_json(i) for i in items], out, ensure_ascii=False)
        out.write("\n")
    else:
        print(render_threads(items), file=out)
    return 0


def insight_summary(kind: str, found: Any) -> tuple[str, str]:
    """Title and body of a shared insight: names, counts and trends — never reflection text."""
    if kind == "pattern":
        title = f"Pattern: {found.label}"
        body = (f"A recurring {found.kind} ({found.label}), seen in {found.count} reflections "
                f"from {found.first_seen[:7]} to {found.last_seen[:7]}.")
        return title, body
    a, b = found.poles
    weekly = " ".join(str(n) for n in found.weekly)
    body = (f"A tension between {a} and {b}: {found.occurrences} times, "
            f"status {found.status}, came back {found.episodes} times, mean intensity "
            f"{found.intensity:.1f} of 5.\nWeekly counts, oldest first: {weekly}")
    return f"Tension: {a} vs {b}", body


async def cmd_publish(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from crdt.insights import Scope

    # Shared scope: derived from reflections not marked private, and only its summary.
    found: list[Any]
    if args.kind == "pattern":
        found = [p for p in await core.understanding.patterns(Scope.SHARED, minimum=1)
                 if args.id in (p.key, p.label)]
    else:
        found = [t for t in await core.understanding.tensions(Scope.SHARED)
                 if args.id in (t.key, f"{t.poles[0]} vs {t.poles[1]}")]
    if not found:
        raise UsageError(f"no {args.kind} {args.id!r} (see 'mirror {args.kind}s --json' for ids)")
    title, body = insight_summary(args.kind, found[0])
    server = _server(core)
    print(f"Exactly this will leave this device, public on {server.url}:", file=out)
    print(f"  title: {title}", file=out)
    for line in body.splitlines():
        print(f"  {line}", file=out)
    print("No reflection text and no evidence is included.", file=out)
    if not _confirm(args, "Publish it?", out):
        print("not published", file=out)
        return 1
    return await _publish(core, "insight", {"title": title, "body": body}, args.kind, title, out)


async def cmd_published(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from ..commons.home import ConsentLedger

    entries = (await ConsentLedger.open(core.store)).entries()
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
        print(f"{_short(e.doc_id)}  {e.what:8} {e.published_at}  {e.server}  {state}  "
              f"{_one_line(e.summary, 40)}", file=out)
    return 0


async def cmd_unpublish(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from dataclasses import replace

    from ..commons.home import AuthorKeys, ConsentLedger
    from ..commons.sync import post_json

    ledger = await ConsentLedger.open(core.store)
    hits = [e for e in ledger.entries() if _short(e.doc_id).startswith(args.id)
            or e.doc_id == args.id]
    if len(hits) != 1:
        raise UsageError(
            f"{args.id!r} matches {len(hits)} published items (see 'mirror published')")
    entry = hits[0]
    if entry.withdrawn_at:
        print(f"{_short(entry.doc_id)} was already withdrawn {entry.withdrawn_at}", file=out)
        return 0
    author = AuthorKeys(core.home.path).owner_of(entry.doc_id)
    if author is None:
        raise MirrorError("the author key of that item is not in this home")
    if not _confirm(args, f"Withdraw {_short(entry.doc_id)} from {entry.server}?", out):
        print("nothing withdrawn", file=out)
        return 1
    # Mark it first: from now on this node never offers it again, even if the request fails.
    ledger.record(replace(entry, withdrawn_at=_now()))
    await core.store.wait_durable()
    answer = await post_json(entry.server, "/api/v1/withdraw", {
        "doc_id": entry.doc_id, "signature": author.withdrawal(entry.doc_id).hex()})
    if answer.get("held") is False:
        print(f"withdrawn {_short(entry.doc_id)}: {entry.server} never held it "
              "(nothing to delete there)", file=out)
    else:
        print(f"withdrawn {_short(entry.doc_id)}: {entry.server} deleted it", file=out)
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


async def repl_command(core: MirrorCore, name: str, rest: str) -> str:
    """``/commons [THREAD]``: read the Commons; returns the text to show."""
    import io

    try:
        words = shlex.split(rest)
    except ValueError as exc:
        raise UsageError(f"/{name}: {exc}") from None
    out = io.StringIO()
    args = argparse.Namespace(thread=words[0] if words else None, json=False, offline=False)
    await cmd_read(core, args, out)
    return out.getvalue().rstrip("\n")
