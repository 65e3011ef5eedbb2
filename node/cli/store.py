"""Blind-store commands: ``mirror store add|list|remove|sync``.

The configured stores live in ``blind-stores.json`` in the home, beside what
this device knows of each (epoch, cursor, last sync). ``mirror serve`` (and
the prompt with sync on) keeps every store usable in the current mode in sync;
``mirror store sync`` catches up once and exits.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from ..app import Mirror
from ..errors import MirrorError, UsageError
from ..sync.blind import (
    BlindStoreError,
    BlindSync,
    LogState,
    load_states,
    normalize_store_url,
    open_http_client,
    save_state,
    usable_stores,
)
from ..sync.blind_client import StoreRefused
from ..sync.runner import open_group

if TYPE_CHECKING:
    from ..core import MirrorCore
    from ..sync.group import Group

log = logging.getLogger("mirror.cli")

AddCommand = Callable[..., argparse.ArgumentParser]


def _when(seconds: object) -> str:
    if not isinstance(seconds, int | float) or not seconds:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _url(text: str) -> str:
    try:
        return normalize_store_url(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


async def cmd_store(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    core = mirror.core

    home = core.home.path
    states = load_states(home)
    if args.action == "add":
        if not args.url:
            raise UsageError("which store? mirror store add URL")
        url = _url(args.url)
        if not usable_stores(core.config.mirror_mode, [url]):
            raise MirrorError(f"in local mode a store must be on this machine or the LAN "
                              f"(got {url}); run: mirror mode hybrid")
        if url in states:
            print(f"{url} is already configured", file=out)
            return 0

        group = await open_group(core)
        await _check_store(core, group, url)
        save_state(home, url, LogState(group.keyring.epoch))
        print(f"added {url}; mirror serve keeps it in sync (or run: mirror store sync)",
              file=out)
        return 0
    if args.action == "remove":
        if not args.url:
            raise UsageError("which store? mirror store remove URL")
        url = _url(args.url)
        if url not in states:
            raise MirrorError(f"{url} is not configured (see: mirror store list)")
        save_state(home, url, None)
        print(f"removed {url}; what it keeps stays there until it is compacted away", file=out)
        return 0
    if args.action == "sync":
        return await _sync(core, args, out, usable_stores(core.config.mirror_mode, states))
    rows = [{"url": url, "epoch": s.epoch, "cursor": s.cursor, "last_sync": s.last_sync,
             "rejected": s.rejected, "status": s.status} for url, s in states.items()]
    if args.json:
        json.dump(rows, out, indent=1)
        out.write("\n")
    elif not rows:
        print("no blind store configured (add one: mirror store add URL)", file=out)
    for row in rows if not args.json else []:
        print(f"{row['url']}  epoch {row['epoch']}, last sync {_when(row['last_sync'])}: "
              f"{row['status']}" + (f" ({row['rejected']} rejected)" if row["rejected"] else ""),
              file=out)
    return 0


STORE_PREFIX = "/store"  # where a Commons server mounts its blind store


async def _check_store(core: MirrorCore, group: Group, url: str) -> None:
    """Ask *url* once for this group's usage, so that a URL that is no blind store
    (a Commons server's root, a typo) is refused now rather than failing at every
    sync; a Commons server's own store under /store is pointed out."""

    async def answers(candidate: str) -> None:
        sync = BlindSync(core.store, group, candidate, core.home.path, http)
        await sync._client(sync.epoch).usage()

    async with open_http_client() as http:
        try:
            await answers(url)
        except StoreRefused as exc:
            if exc.status != 404:
                raise MirrorError(f"{exc}; nothing was added") from None
            hint = ""
            if not url.endswith(STORE_PREFIX):
                try:
                    await answers(url + STORE_PREFIX)
                    hint = (f"; this server keeps its blind store at {url}{STORE_PREFIX}: "
                            f"mirror store add {url}{STORE_PREFIX}")
                except BlindStoreError:
                    pass
            raise MirrorError(f"{url} is not a blind store (it answered 404){hint}; "
                              "nothing was added") from None
        except BlindStoreError as exc:
            raise MirrorError(f"{exc}; nothing was added (check the URL, or add it when the "
                              "store can be reached)") from None


async def _sync(core: MirrorCore, args: argparse.Namespace, out: TextIO, urls: list[str]) -> int:
    if not urls:
        raise MirrorError("no blind store usable in this mode (see: mirror store list)")
    group = await open_group(core)
    failed = 0
    results: list[dict[str, Any]] = []
    async with open_http_client() as http:
        for url in urls:
            sync = BlindSync(core.store, group, url, core.home.path, http)
            try:
                report = await sync.sync_once(compact=args.compact)
                usage = await sync._client(sync.epoch).usage()
            except BlindStoreError as exc:
                failed += 1
                sync._set_status(str(exc))
                results.append({"url": url, "error": str(exc)})
                if not args.json:
                    print(f"{url}: {exc}", file=out)
                continue
            await core.store.wait_durable()
            row = {"url": url, **vars(report), "epoch": sync.epoch, "cursor": sync.state.cursor,
                   "store_bytes": usage.get("bytes"), "store_envelopes": usage.get("envelopes")}
            results.append(row)
            if not args.json:
                print(f"{url}: pulled {report.applied}, pushed {report.pushed}"
                      + (f", rejected {report.rejected}" if report.rejected else "")
                      + (", compacted" if report.compacted else ""), file=out)
    if args.json:
        json.dump(results, out, indent=1)
        out.write("\n")
    return 1 if failed else 0


def add_commands(add: AddCommand) -> None:
    p = add("store", cmd_store, "blind stores: keep your devices in sync through a server "
            "that cannot read what it keeps (add, list, remove, sync)")
    p.add_argument("action", nargs="?", choices=("list", "add", "remove", "sync"),
                   default="list")
    p.add_argument("url", nargs="?", help="the store's URL, e.g. https://store.example")
    p.add_argument("--compact", action="store_true",
                   help="sync: also upload a snapshot so the store can drop old entries")
    p.add_argument("--json", action="store_true", help="print JSON")
