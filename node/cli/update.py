"""Update commands: ``mirror update [keys|check|verify|install|source|auto]``.

Contributed to the ``mirror`` parser through ``cli.COMMAND_MODULES``. Only
``install`` (asked for, or ``check`` with auto-update turned on) runs pip, and
only on a wheel that matched a manifest signed by a key the person trusts.
The update machinery (pynacl, httpx) is imported by the handlers, so other
commands do not pay for it. See docs/updates.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import trio

from ..app import Mirror
from ..errors import UsageError
from ..updates.errors import UpdateError
from ..updates.release import (
    MIRROR_DISTRIBUTION,
    compare_with_installed,
    fetch_release,
    install_release,
    installed_version,
    load_saved_release,
    refuse_downgrade,
    resolve_release,
    save_release,
    trusted_keys,
    verify_wheel,
)
from .options import AddCommand

if TYPE_CHECKING:
    from ..updates.release import Comparison, VerifiedRelease


# --------------------------------------------------------------------------- keys


def _read_key_argument(text: str) -> tuple[str, str]:
    """A key given literally (``ed25519:…``) or as a ``.pub`` file: (key, comment)."""
    if text.strip().startswith("ed25519:"):
        return text.strip(), ""
    path = Path(text).expanduser()
    try:
        first = path.read_text(encoding="utf-8").strip().splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        raise UsageError(
            f"{text!r} is neither a key (ed25519:<64 hex digits>) nor a readable .pub file"
        ) from None
    key, _, comment = first.partition(" ")
    return key, comment.strip()


async def cmd_keys_list(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    keys = trusted_keys(mirror.home).load()
    if getattr(args, "json", False):
        json.dump([{"key": k.key, "label": k.label, "added": k.added} for k in keys], out,
                  indent=1, ensure_ascii=False)
        out.write("\n")
    elif not keys:
        print("You trust no release keys: nothing can be installed. To follow a fork, add its "
              "key: mirror update keys add KEY --label NAME", file=out)
    else:
        for k in keys:
            print(f"{k.label}  {k.key}  (added {k.added})", file=out)
    return 0


async def cmd_keys_add(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    key, comment = _read_key_argument(args.key)
    label = args.label or comment
    if not label:
        raise UsageError("name the key so you know whose it is: --label NAME")
    entry = trusted_keys(mirror.home).add(key, label)
    print(f"trusted {entry.key} as {entry.label!r}: releases it signs can now be installed "
          "when you ask", file=out)
    return 0


async def cmd_keys_remove(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    entry = trusted_keys(mirror.home).remove(args.key)
    print(f"no longer trusting {entry.label!r} ({entry.key})", file=out)
    return 0


# --------------------------------------------------------------------------- releases


def _release_json(release: VerifiedRelease, comparison: Comparison) -> dict[str, Any]:
    m = release.manifest
    return {
        "version": m.version, "fork": m.fork, "key": m.key, "key_label": release.label,
        "wheel": m.wheel, "sha256": m.sha256, "size": m.size, "date": m.date, "notes": m.notes,
        "source": release.origin, "installed": comparison.installed,
        "relation": comparison.relation,
    }


def _print_release(release: VerifiedRelease, comparison: Comparison, out: TextIO) -> None:
    m = release.manifest
    print(f"release {m.version} of fork {m.fork!r}, signed by your key {release.label!r} "
          f"on {m.date}", file=out)
    words = {"newer": "this release is newer", "same": "you have this release",
             "older": "this release is OLDER", "unknown": "cannot compare"}
    print(f"installed: {comparison.installed or 'nothing'} ({words[comparison.relation]})",
          file=out)
    if m.notes.strip():
        print("notes:", file=out)
        for line in m.notes.strip().splitlines():
            print(f"  {line}", file=out)


async def _confirm(release: VerifiedRelease, comparison: Comparison, *, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("pass --yes to install without asking")
    question = (f"Install {release.describe()} over {comparison.installed or 'nothing'}? [y/N] ")
    answer: str = await trio.to_thread.run_sync(input, question)
    return answer.strip().lower() in {"y", "yes"}


async def _install(
    mirror: Mirror, release: VerifiedRelease, location: str | None, *,
    yes: bool, allow_downgrade: bool, out: TextIO,
) -> int:
    async def confirm(r: VerifiedRelease, c: Comparison) -> bool:
        return await _confirm(r, c, yes=yes)

    before = await install_release(
        mirror.home, release, location, mirror_mode=mirror.config.mirror_mode,
        allow_downgrade=allow_downgrade, confirm=confirm,
    )
    if before is None:
        print("nothing installed", file=out)
        return 1
    print(f"installed {release.describe()} (was {before.installed or 'nothing'}); "
          "restart running Mirror processes to use it", file=out)
    return 0


async def cmd_check(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    source = args.source or mirror.config.update_source
    if not source:
        raise UsageError("where are releases published? mirror update check FILE|URL, "
                         "or set a default: mirror update source FILE|URL")
    release = await fetch_release(mirror.home, source, mirror_mode=mirror.config.mirror_mode)
    comparison = compare_with_installed(release.manifest)
    refuse_downgrade(release.manifest, comparison, allow=args.allow_downgrade)
    save_release(mirror.home, release)
    auto = mirror.config.auto_update and comparison.relation == "newer"
    if args.json:
        json.dump({**_release_json(release, comparison), "auto_install": auto}, out,
                  indent=1, ensure_ascii=False)
        out.write("\n")
    else:
        _print_release(release, comparison, out)
    if auto:
        if not args.json:
            print("auto-update is on: installing this verified release", file=out)
        return await _install(mirror, release, None, yes=True, allow_downgrade=False, out=out)
    if comparison.relation == "newer" and not args.json:
        print("nothing was installed; to install it: mirror update install", file=out)
    return 0


async def cmd_verify(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    release = await resolve_release(mirror.home, args.manifest,
                                    mirror_mode=mirror.config.mirror_mode)
    await verify_wheel(mirror.home, release, args.wheel, mirror_mode=mirror.config.mirror_mode)
    m = release.manifest
    print(f"verified: {m.wheel} is release {m.version} of fork {m.fork!r}, signed by your key "
          f"{release.label!r} (sha256 {m.sha256})", file=out)
    return 0


async def cmd_install(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    release = await resolve_release(mirror.home, args.manifest,
                                    mirror_mode=mirror.config.mirror_mode)
    return await _install(mirror, release, args.wheel, yes=args.yes,
                          allow_downgrade=args.allow_downgrade, out=out)


# --------------------------------------------------------------------------- settings


async def cmd_source(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    if args.clear or args.source:
        await mirror.change_settings(update_source="" if args.clear else args.source)
    print(f"update source: {mirror.config.update_source or 'none'}", file=out)
    return 0


async def cmd_auto(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    if args.state is not None:
        await mirror.change_settings(auto_update=args.state == "on")
    state = "on" if mirror.config.auto_update else "off"
    print(f"auto-update: {state}" + (
        " (mirror update check installs verified newer releases without asking)"
        if mirror.config.auto_update else ""), file=out)
    return 0


async def cmd_status(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    print(f"installed: {MIRROR_DISTRIBUTION} {installed_version(MIRROR_DISTRIBUTION) or '?'}",
          file=out)
    print(f"trusted keys: {len(trusted_keys(mirror.home).load())} (mirror update keys list)",
          file=out)
    print(f"update source: {mirror.config.update_source or 'none'}", file=out)
    print(f"auto-update: {'on' if mirror.config.auto_update else 'off'}", file=out)
    try:
        release = load_saved_release(mirror.home)
        last = release.describe() if release else "none (mirror update check)"
    except UpdateError as exc:
        last = f"no longer verifies: {exc}"
    print(f"last verified release: {last}", file=out)
    return 0


# --------------------------------------------------------------------------- parser


def add_commands(add: AddCommand) -> None:
    top = add("update", cmd_status,
              "follow a fork's signed releases; nothing is installed unless you ask")
    sub = top.add_subparsers(title="update commands", metavar="ACTION")

    def action(
        parent: argparse._SubParsersAction,  # type: ignore[type-arg]
        name: str, handler: Any, help_text: str,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text,
                                                       description=help_text)
        p.set_defaults(handler=handler)
        return p

    keys = action(sub, "keys", cmd_keys_list, "the keys you trust to sign releases")
    keys.add_argument("--json", action="store_true", help="print JSON")
    keys_sub = keys.add_subparsers(title="key commands", metavar="ACTION")
    p = action(keys_sub, "list", cmd_keys_list, "list the trusted keys")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = action(keys_sub, "add", cmd_keys_add, "trust a fork's release key")
    p.add_argument("key", help="ed25519:<64 hex digits>, or the fork's .pub file")
    p.add_argument("--label", help="your name for it (default: the .pub file's comment)")
    p = action(keys_sub, "remove", cmd_keys_remove, "stop trusting a key")
    p.add_argument("key", help="the key or its label")

    p = action(sub, "check", cmd_check, "fetch and verify a release manifest; installs nothing "
               "unless auto-update is on")
    p.add_argument("source", nargs="?", help="a manifest file or http(s) URL "
                   "(default: the update source)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="accept a release older than the installed one")
    p = action(sub, "verify", cmd_verify, "check a wheel against a verified release")
    p.add_argument("wheel", help="the wheel file (or its URL)")
    p.add_argument("--manifest", metavar="SOURCE",
                   help="verify against this manifest (default: the last one checked)")
    p = action(sub, "install", cmd_install, "verify a release, then install it with pip")
    p.add_argument("wheel", nargs="?",
                   help="the wheel file or URL (default: beside the manifest)")
    p.add_argument("--manifest", metavar="SOURCE",
                   help="install this release (default: the last one checked)")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.add_argument("--allow-downgrade", action="store_true",
                   help="install even if it is older than, or the same as, what is installed")
    p = action(sub, "source", cmd_source, "show or set where mirror update check looks")
    p.add_argument("source", nargs="?", help="a manifest file or http(s) URL")
    p.add_argument("--clear", action="store_true", help="forget the update source")
    p = action(sub, "auto", cmd_auto,
               "show or set auto-update (off by default; only verified releases)")
    p.add_argument("state", nargs="?", choices=("on", "off"))
