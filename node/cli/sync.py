"""Sync commands: serve, pair, join, devices, share, sync status."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import trio

from crdt.devices import clean_name

from ..config import parse_host_port
from ..errors import ConfigError, MirrorError, UsageError

if TYPE_CHECKING:
    from ..core import MirrorCore
    from ..sync.group import Group

log = logging.getLogger("mirror.cli")

AddCommand = Callable[..., argparse.ArgumentParser]


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


def _listen(core: MirrorCore, args: argparse.Namespace) -> tuple[str, int]:
    return _address(args.listen or core.config.sync_listen, "--listen")


def _interfaces(core: MirrorCore, args: argparse.Namespace) -> list[str] | None:
    if args.no_discovery or not core.config.discovery:
        return None
    chosen = args.interfaces or list(core.config.discovery_interfaces)
    return chosen or []  # [] = the LAN interfaces


def _relays(core: MirrorCore) -> tuple[str, ...]:
    """The configured relays this mode may use (only LAN ones in local mode)."""
    from ..sync.relay import usable_relays

    return usable_relays(core.config)


async def _group(core: MirrorCore) -> Group:
    from ..sync.runner import open_group

    return await open_group(core)


async def _until_signal(cancel: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            cancel.cancel()
            return


def _when(seconds: object) -> str:
    if not isinstance(seconds, int | float) or not seconds:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


# --------------------------------------------------------------------------- serve


async def cmd_serve(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from ..sync.runner import run_sync

    peers = [_address(p, "--peer") for p in [*(args.peer or ()), *core.config.sync_peers]]
    # Listen for SIGTERM / SIGINT before announcing readiness: one sent right after
    # the first line must stop the service cleanly, not kill it mid-way.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            running = await nursery.start(
                functools.partial(
                    run_sync, core, listen=_listen(core, args),
                    interfaces=_interfaces(core, args), peers=peers,
                )
            )
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


async def cmd_pair(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:

    from protocol.pairing import new_pairing_code

    from ..sync.pairing import PAIRING_TIMEOUT_S, PairerState, pairing_hint, serve_pairing_attempt

    group = await _group(core)
    state = PairerState(code=new_pairing_code(os.urandom), done=trio.Event())
    host, port = _listen(core, args)
    listeners = await trio.open_tcp_listeners(port, host=host or None)
    port = listeners[0].socket.getsockname()[1]
    address = f"{host}:{port}"
    timeout = args.timeout if args.timeout is not None else PAIRING_TIMEOUT_S
    if args.json:
        print(json.dumps({"code": state.code, "address": address}), file=out, flush=True)
    else:
        print(f"Pairing code: {state.code}", file=out)
        print(f"On the other device run: mirror join {state.code}"
              f"   (or: mirror join {state.code} --address {address})", file=out)
        print(f"Waiting up to {timeout:.0f} s …", file=out, flush=True)

    async def handle(stream: trio.SocketStream) -> None:
        await serve_pairing_attempt(group, state, stream, where=_remote_address(stream))

    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, handle, listeners)
            nursery.start_soon(_until_signal, nursery.cancel_scope)
            interfaces = _interfaces(core, args)
            if interfaces is not None:
                from ..discovery.lan import advertise_pairing

                nursery.start_soon(
                    _advertise, advertise_pairing, interfaces, port, pairing_hint(state.code)
                )
            relays = _relays(core)
            if relays:  # also wait in the code's rendezvous room (a joiner off the LAN)
                from ..sync.relay import serve_pairing_through_relays

                nursery.start_soon(serve_pairing_through_relays, group, state, relays)
            assert state.done is not None
            await state.done.wait()
            # Attempts already under way (a joiner racing the one that got in) are
            # still answered, refused, and shown.
            with trio.move_on_after(LATE_ATTEMPTS_GRACE_S):
                await state.wait_idle()
            nursery.cancel_scope.cancel()
    if state.joined is not None:
        await core.store.wait_durable()
    _report_attempts(state, args.json, out)
    if state.joined is not None:
        return 0
    if state.failure:
        raise MirrorError(state.failure)
    raise MirrorError("no device joined in time; the code is void (run mirror pair again)")


LATE_ATTEMPTS_GRACE_S = 5.0
"""After a device joined: how long attempts already under way may still take to
be refused and shown (a racing joiner)."""


def _remote_address(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "?"
    return f"{host}:{port}"


def _report_attempts(state: Any, as_json: bool, out: TextIO) -> None:
    """Every device that tried the code, not only the one that got in."""
    from ..identity import device_id_for
    from ..sync.pairing import AttemptOutcome

    joined = state.joined
    if as_json:
        print(json.dumps({
            "joined": None if joined is None else {
                "device_id": device_id_for(joined.device_key), "name": joined.name},
            "attempts": [{
                "where": a.where, "outcome": a.outcome.name.lower(), "counted": a.counted,
                "device_id": device_id_for(a.device.device_key) if a.device else None,
                "name": a.device.name if a.device else None,
            } for a in state.tried],
        }), file=out, flush=True)
        return
    if joined is not None:
        print(f"paired with {joined.name or 'a new device'} "
              f"({device_id_for(joined.device_key)})", file=out)
    others = [a for a in state.tried if a.outcome is not AttemptOutcome.JOINED]
    if others:
        print(f"{len(others)} other attempt(s) on this code:", file=out)
        for attempt in others:
            print(f"  {attempt.describe()}", file=out)
    if joined is not None and any(a.outcome is AttemptOutcome.REFUSED for a in others):
        print("Another device also knew this code. If "
              f"{joined.name or 'the device that joined'} is not the one you meant to pair, "
              f"remove it: mirror devices remove {device_id_for(joined.device_key)}", file=out)


async def _advertise(advertise: Any, interfaces: list[str], port: int, hint: bytes) -> None:
    async with advertise(interfaces=interfaces or None, port=port, pairing_tag=hint):
        await trio.sleep_forever()


async def cmd_join(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from protocol import LocalProtocolError
    from protocol.pairing import normalize_pairing_code

    from ..sync.pairing import join, pairing_hint

    try:
        normalize_pairing_code(args.code)
    except LocalProtocolError as exc:
        raise UsageError(f"{args.code!r} is {exc}") from None
    if args.name:
        try:
            clean_name(args.name)
        except ValueError as exc:
            raise UsageError(f"--name: {exc}") from None
    group = await _group(core)
    others = [r for r in group.active() if r.device_id != group.keyring.device_id]
    if others and not args.force:
        raise MirrorError(
            f"this device is already in a group with {len(others)} other device(s); "
            "pass --force to leave it for the new one"
        )
    timeout = args.timeout or 60.0
    relays = _relays(core)
    if not args.address and _interfaces(core, args) is None and relays:
        from ..sync.relay import join_through_relays

        if args.name:  # the name the pairer records is the one we keep, as on the LAN
            group.rename_self(args.name)
        try:
            with trio.fail_after(timeout):
                result = await join_through_relays(
                    group, args.code, group.keyring.device_name, relays
                )
        except trio.TooSlowError:
            raise MirrorError("the pairing device did not show up at the relay in time") from None
        await core.store.wait_durable()
        print(f"joined through the relay: this device is now in a group of "
              f"{len(result.group.devices)} devices", file=out)
        return 0
    if args.address:
        candidates = [_address(args.address, "--address")]
    else:
        interfaces = _interfaces(core, args)
        if interfaces is None:
            raise UsageError("with discovery off, give the pairing device: --address HOST:PORT "
                             "(or add a relay: mirror relay add URL)")
        from ..discovery.lan import find_pairing

        peer = await find_pairing(interfaces or None, pairing_hint(args.code), timeout_s=timeout)
        candidates = peer.candidates()  # every address it advertised, best first
    from ..sync.dialing import connect_first

    try:
        with trio.fail_after(timeout):
            stream, _ = await connect_first(candidates)
    except (OSError, trio.TooSlowError) as exc:
        where = ", ".join(f"{host}:{port}" for host, port in candidates)
        raise MirrorError(f"cannot reach the pairing device at {where} ({exc})") from None
    if args.name:
        group.rename_self(args.name)  # the name the pairer records is the one we keep
    name = group.keyring.device_name
    result = await join(group, args.code, stream, name)
    await core.store.wait_durable()
    print(f"joined: this device is now in a group of {len(result.group.devices)} devices",
          file=out)
    return 0


# --------------------------------------------------------------------------- devices, share, status


async def cmd_devices(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from ..sync.service import read_status

    group = await _group(core)
    if args.action == "remove":
        if not args.id:
            raise UsageError("which device? mirror devices remove ID")
        record = group.find(args.id)
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("pass --yes to remove a device without asking")
            answer = await trio.to_thread.run_sync(
                input, f"Remove {record.name} ({record.device_id})? [y/N] "
            )
            if answer.strip().lower() not in {"y", "yes"}:
                print("kept", file=out)
                return 1
        removed, epoch = group.remove_device(args.id)
        await core.store.wait_durable()
        print(f"removed {removed.name} ({removed.device_id}); the group is now at epoch {epoch}",
              file=out)
        return 0
    status = read_status(core.home.path) or {}
    seen = {p.get("device_id"): p for p in status.get("peers", []) if isinstance(p, dict)}
    rows = []
    for member in group.members():
        r = member.record
        peer = seen.get(r.device_id, {})
        rows.append({
            "device_id": r.device_id,
            "name": r.name,
            "this_device": member.is_self,
            "active": r.active,
            "added_at": r.added_at.isoformat(),
            "removed_at": r.removed_at.isoformat() if r.removed_at else None,
            "last_seen": peer.get("last_seen"),
            "address": peer.get("address"),
        })
    if args.json:
        json.dump(rows, out, indent=1)
        out.write("\n")
        return 0
    for row in rows:
        mark = "*" if row["this_device"] else " "
        state = "" if row["active"] else "  (removed)"
        seen_text = "this device" if row["this_device"] else f"last seen {_when(row['last_seen'])}"
        where = f" at {row['address']}" if row["address"] else ""
        print(f"{mark} {row['device_id']}  {row['name']:<20} {seen_text}{where}{state}", file=out)
    return 0


async def cmd_share(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from crdt import SyncClass

    from ..sync.catalogue import is_local_only

    target = SyncClass.parse(args.sync_class)
    if target is SyncClass.COMMONS:
        raise UsageError("documents go to the Commons by publishing, not by sharing")
    if args.what == "journal":
        changed = await core.set_journal_class(target)
        print(f"journal: {target.value} ({len(changed)} shards changed); "
              "private reflections stay on this device", file=out)
        return 0
    info = core.store.info(args.what)
    if info is None:
        raise MirrorError(f"no document {args.what!r} (see: mirror sync status --json)")
    if target is not SyncClass.LOCAL and is_local_only(info.doc_id):
        raise MirrorError(f"{info.doc_id} is local by nature and cannot be shared")
    await core.store.set_sync_class(info.doc_id, target)
    print(f"{info.doc_id}: {target.value}", file=out)
    return 0


async def cmd_sync(core: MirrorCore, args: argparse.Namespace, out: TextIO) -> int:
    from crdt import SyncClass

    from ..sync.service import read_status

    if args.action in {"on", "off"}:
        new = core.config.with_changes(sync_enabled=args.action == "on")
        core.home.save_config(new)
        core.config = new
        print(f"sync in the prompt: {args.action}", file=out)
        return 0
    status = read_status(core.home.path)
    shared = [i.doc_id for i in core.store.documents() if i.sync_class is SyncClass.DEVICES]
    data = {
        "sync_enabled": core.config.sync_enabled,
        "serving": bool(status and status.get("running")),
        "listening": (status or {}).get("listening"),
        "pending": (status or {}).get("pending", 0),
        "peers": (status or {}).get("peers", []),
        "shared_documents": shared,
    }
    if args.json:
        json.dump(data, out, indent=1)
        out.write("\n")
        return 0
    if data["serving"]:
        print(f"serving on {data['listening']}; {data['pending']} frames pending", file=out)
    else:
        print("not serving (start it with: mirror serve)", file=out)
    print(f"{len(shared)} documents shared with your devices", file=out)
    for peer in data["peers"]:
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
