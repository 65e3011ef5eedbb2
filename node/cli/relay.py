"""Relay commands: ``mirror relay add|remove|list [URL]``.

A relay lets this device's sessions (and pairing) reach devices that are not
on the same LAN. Give every device of the group the same list: with several
relays, each room is placed by rendezvous hashing over the list, so devices
with the same list meet on the same relay without talking.
"""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from ..app import Mirror
from ..config import is_loopback_or_lan, normalize_relay_url
from ..errors import MirrorError, UsageError
from .options import AddCommand

MAX_RELAYS = 16


async def cmd_relay(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    relays = list(mirror.config.relays)
    if args.action == "list":
        if args.json:
            json.dump({"relays": relays, "mode": mirror.config.mirror_mode}, out)
            out.write("\n")
        elif not relays:
            print("no relay (add one with: mirror relay add URL)", file=out)
        for url in [] if args.json else relays:
            print(f"{url}{_mode_note(mirror, url)}", file=out)
        return 0
    if not args.url:
        raise UsageError(f"which relay? mirror relay {args.action} URL")
    try:
        url = normalize_relay_url(args.url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.action == "add":
        if url in relays:
            print(f"{url} is already listed", file=out)
            return 0
        if len(relays) >= MAX_RELAYS:
            raise MirrorError(f"at most {MAX_RELAYS} relays; remove one first")
        relays.append(url)
    else:
        if url not in relays:
            raise MirrorError(f"{url} is not listed (see: mirror relay list)")
        relays.remove(url)
    await mirror.change_settings(relays=tuple(relays))
    verb = "added" if args.action == "add" else "removed"
    print(f"{verb} {url}{_mode_note(mirror, url) if args.action == 'add' else ''}", file=out)
    return 0


def _mode_note(mirror: Mirror, url: str) -> str:
    if mirror.config.mirror_mode == "local" and not is_loopback_or_lan(url):
        return "  (not used in local mode: run mirror mode hybrid to reach it)"
    return ""


def add_commands(add: AddCommand) -> None:
    p = add("relay", cmd_relay, "list, add or remove the relays that connect your devices "
            "when they are not on the same LAN")
    p.add_argument("action", nargs="?", choices=("list", "add", "remove"), default="list")
    p.add_argument("url", nargs="?", help="the relay, e.g. https://relay.example")
    p.add_argument("--json", action="store_true", help="print JSON")
