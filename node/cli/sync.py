"""Sync commands: serve, pair, join, devices, share, sync status."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import signal
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TextIO

import trio

from ..app import Mirror, PairingOffer, PairingResult
from ..config import parse_host_port
from ..errors import ConfigError, MirrorError, UsageError
from .options import AddCommand

log = logging.getLogger("mirror.cli")


# --------------------------------------------------------------------------- options


def _network_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="where to listen (default from config: sync_listen, 0.0.0.0:0)")
    p.add_argument("--discovery-interface", action="append", metavar="IP", dest="interfaces",
                   help="announce and browse on this interface address only (repeatable); "
                   "default: the LAN interfaces")
    p.add_argument("--no-discovery", action="store_true",
                   help="do not use LAN discovery (also: discovery=false in the config)")


def _address(text: str, what: str) -> tuple[str, int]:
    try:
        return parse_host_port(text, what=what)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _listen(mirror: Mirror, args: argparse.Namespace) -> tuple[str, int]:
    return _address(args.listen or mirror.config.sync_listen, "--listen")


def _interfaces(mirror: Mirror, args: argparse.Namespace) -> list[str] | None:
    if args.no_discovery or not mirror.config.discovery:
        return None
    chosen = args.interfaces or list(mirror.config.discovery_interfaces)
    return chosen or []  # [] = the LAN interfaces


async def _set_on_signal(event: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            event.set()
            return


def _when(seconds: object) -> str:
    if not isinstance(seconds, int | float) or not seconds:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- serve


async def cmd_serve(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    peers = [_address(p, "--peer") for p in args.peer or ()]
    # Listen for SIGTERM / SIGINT before announcing readiness: one sent right after
    # the first line must stop the service cleanly, not kill it mid-way.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            running = await nursery.start(functools.partial(
                mirror.serve, listen=_listen(mirror, args),
                interfaces=_interfaces(mirror, args), peers=peers,
            ))
            host = running.service.listen[0]
            ring = running.group.keyring
            if args.json:
                print(json.dumps({"address": f"{host}:{running.port}",
                                  "device_id": ring.device_id}), file=out, flush=True)
            else:
                print(f"serving on {host}:{running.port} as {ring.device_name} "
                      f"({ring.device_id}); Ctrl-C stops", file=out, flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    print("stopped", file=out, flush=True)
    return 0


# --------------------------------------------------------------------------- pair / join


async def cmd_pair(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    def show(offer: PairingOffer) -> None:
        if args.json:
            print(json.dumps({"code": offer.code, "address": offer.address}), file=out,
                  flush=True)
            return
        print(f"Pairing code: {offer.code}", file=out)
        print(f"On the other device run: mirror join {offer.code}"
              f"   (or: mirror join {offer.code} --address {offer.address})", file=out)
        print(f"Waiting up to {offer.timeout_s:.0f} s …", file=out, flush=True)

    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_set_on_signal, stop)
        result = await mirror.pair(show, listen=_listen(mirror, args),
                                   interfaces=_interfaces(mirror, args),
                                   timeout_s=args.timeout, stop=stop)
        nursery.cancel_scope.cancel()
    _report_attempts(result, args.json, out)
    if result.joined_id is not None:
        return 0
    if result.failure:
        raise MirrorError(result.failure)
    raise MirrorError("no device joined in time; the code is void (run mirror pair again)")


def _report_attempts(result: PairingResult, as_json: bool, out: TextIO) -> None:
    """Every device that tried the code, not only the one that got in."""
    if as_json:
        print(json.dumps({
            "joined": None if result.joined_id is None else {
                "device_id": result.joined_id, "name": result.joined_name},
            "attempts": [{
                "where": a.where, "outcome": a.outcome, "counted": a.counted,
                "device_id": a.device_id, "name": a.name,
            } for a in result.attempts],
        }), file=out, flush=True)
        return
    if result.joined_id is not None:
        print(f"paired with {result.joined_name or 'a new device'} ({result.joined_id})",
              file=out)
    others = result.others
    if others:
        print(f"{len(others)} other attempt(s) on this code:", file=out)
        for attempt in others:
            print(f"  {attempt.description}", file=out)
    if result.code_was_shared:
        print("Another device also knew this code. If "
              f"{result.joined_name or 'the device that joined'} is not the one you meant to "
              f"pair, remove it: mirror devices remove {result.joined_id}", file=out)


async def cmd_join(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    result = await mirror.join(
        args.code, address=_address(args.address, "--address") if args.address else None,
        name=args.name, interfaces=_interfaces(mirror, args), timeout_s=args.timeout,
        force=args.force)
    how = "joined through the relay" if result.through_relay else "joined"
    print(f"{how}: this device is now in a group of {result.devices} devices", file=out)
    return 0


# --------------------------------------------------------------------------- devices, share, status


async def cmd_devices(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    if args.action == "remove":
        if not args.id:
            raise UsageError("which device? mirror devices remove ID")
        device = await mirror.find_device(args.id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("pass --yes to remove a device without asking")
            answer = await trio.to_thread.run_sync(
                input, f"Remove {device.name} ({device.device_id})? [y/N] "
            )
            if answer.strip().lower() not in {"y", "yes"}:
                print("kept", file=out)
                return 1
        removed = await mirror.remove_device(args.id)
        print(f"removed {removed.name} ({removed.device_id}); the group is now at epoch "
              f"{removed.epoch}", file=out)
        return 0
    devices = await mirror.devices()
    if args.json:
        json.dump([asdict(d) for d in devices], out, indent=1)
        out.write("\n")
        return 0
    for d in devices:
        mark = "*" if d.this_device else " "
        state = "" if d.active else "  (removed)"
        seen_text = "this device" if d.this_device else f"last seen {_when(d.last_seen)}"
        where = f" at {d.address}" if d.address else ""
        print(f"{mark} {d.device_id}  {d.name:<20} {seen_text}{where}{state}", file=out)
    return 0


async def cmd_share(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    result = await mirror.share(args.what, args.sync_class)
    if result.what == "journal":
        print(f"journal: {result.sync_class} ({len(result.changed)} shards changed); "
              "private reflections stay on this device", file=out)
    else:
        print(f"{result.what}: {result.sync_class}", file=out)
    return 0


async def cmd_sync(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    if args.action in {"on", "off"}:
        await mirror.set_sync_enabled(args.action == "on")
        print(f"sync in the prompt: {args.action}", file=out)
        return 0
    status = await mirror.sync_status()
    if args.json:
        data = asdict(status)
        data["peers"] = list(status.peers)
        data["shared_documents"] = list(status.shared_documents)
        json.dump(data, out, indent=1)
        out.write("\n")
        return 0
    if status.serving:
        print(f"serving on {status.listening}; {status.pending} frames pending", file=out)
    else:
        print("not serving (start it with: mirror serve)", file=out)
    print(f"{len(status.shared_documents)} documents shared with your devices", file=out)
    for peer in status.peers:
        state = "connected" if peer.get("connected") else "offline"
        print(f"  {peer.get('name') or peer.get('device_id')}: {state}, "
              f"last sync {_when(peer.get('last_sync'))}", file=out)
    return 0


def add_commands(add: AddCommand) -> None:
    p = add("serve", cmd_serve, "run this node headless: listen, discover, sync")
    _network_options(p)
    p.add_argument("--peer", action="append", metavar="HOST:PORT",
                   help="also keep a session with this address (repeatable)")
    p.add_argument("--json", action="store_true", help='print {"address": …} first')
    p = add("pair", cmd_pair, "show a short code that lets another device join")
    _network_options(p)
    p.add_argument("--json", action="store_true", help='print {"code": …, "address": …} first')
    p.add_argument("--timeout", type=float, metavar="S", help="how long the code stays valid")
    p = add("join", cmd_join, "join the group of a device that shows a pairing code")
    p.add_argument("code", help="the code shown by mirror pair")
    _network_options(p)
    p.add_argument("--address", metavar="HOST:PORT", help="the pairing device's address")
    p.add_argument("--name", help="this device's name (default: the host name)")
    p.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds")
    p.add_argument("--force", action="store_true", help="leave a group this device is in")
    p = add("devices", cmd_devices, "list the devices of your group, or remove one")
    p.add_argument("action", nargs="?", choices=("list", "remove"), default="list")
    p.add_argument("id", nargs="?", help="device id (or a unique prefix, or its name)")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add("share", cmd_share, "opt a document in or out of syncing with your devices")
    p.add_argument("what", help="journal, or a document id")
    p.add_argument("--class", dest="sync_class", required=True, choices=("devices", "local"),
                   help="devices: synced among your devices; local: this device only")
    p = add("sync", cmd_sync, "show sync status (peers, last sync, pending), or turn "
            "background sync in the prompt on or off")
    p.add_argument("action", nargs="?", choices=("status", "on", "off"), default="status")
    p.add_argument("--json", action="store_true", help="print JSON")
