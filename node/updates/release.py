"""Checking, verifying and installing releases for one home.

Theory of operation: a release is *verified* when its manifest parses, its key
is in the home's trusted-keys.json and its signature holds. ``check`` fetches
and verifies a manifest and remembers it (``HOME/updates/release.json``);
``verify`` and ``install`` verify the remembered manifest again (the person
may have removed the key since), stage the wheel into a private directory while
hashing it, and only ``install`` hands the staged file to
``python -m pip install``. Nothing else ever runs pip. Versions are compared
with what is installed, and an older release is refused unless allowed.

Home layout added here::

    trusted-keys.json        keys the person follows (node.updates.trust), 0600
    updates/release.json     the last verified manifest and where it came from
    updates/staging-*/       a wheel being checked or installed; removed afterwards
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import trio

from ..files import write_private_json
from ..home import Home
from .errors import DowngradeError, UpdateError
from .manifest import (
    Manifest,
    ReleaseVersion,
    SignedManifest,
    parse_signed_manifest,
    verify_signed_manifest,
)
from .source import (
    fetch_manifest,
    new_staging_dir,
    remove_staging_dir,
    stage_wheel,
    wheel_next_to,
)
from .trust import TrustedKeys

log = logging.getLogger("mirror.update")

MIRROR_DISTRIBUTION = "mirror-reflect"
PIP_TIMEOUT_S = 900.0
SAVED_RELEASE_VERSION = 1

Runner = Callable[[Sequence[str]], Awaitable[None]]


def trusted_keys(home: Home) -> TrustedKeys:
    return TrustedKeys(home.path / "trusted-keys.json")


def updates_dir(home: Home) -> Path:
    return home.path / "updates"


@dataclass(frozen=True)
class VerifiedRelease:
    signed: SignedManifest
    label: str  # the label the person gave the key that signed it
    origin: str  # where the manifest was read from

    @property
    def manifest(self) -> Manifest:
        return self.signed.manifest

    def describe(self) -> str:
        m = self.manifest
        return f"{m.distribution} {m.version} of fork {m.fork!r} (key {self.label!r}, {m.date})"


async def fetch_release(home: Home, source: str, *, mirror_mode: str) -> VerifiedRelease:
    """Fetch the manifest at *source* and verify it against the trusted keys."""
    fetched = await fetch_manifest(source, mirror_mode=mirror_mode)
    signed = parse_signed_manifest(fetched.data)
    label = verify_signed_manifest(signed, trusted_keys(home).as_mapping())
    return VerifiedRelease(signed, label, fetched.origin)


def save_release(home: Home, release: VerifiedRelease) -> None:
    folder = updates_dir(home)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "release.json"
    data = {"version": SAVED_RELEASE_VERSION, "origin": release.origin,
            "signed": release.signed.to_json()}
    write_private_json(path, data, indent=2)


def load_saved_release(home: Home) -> VerifiedRelease | None:
    """The release ``check`` remembered, verified again; None if there is none."""
    path = updates_dir(home) / "release.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        origin = data["origin"]
        raw = json.dumps(data["signed"]).encode()
        if data.get("version") != SAVED_RELEASE_VERSION or not isinstance(origin, str):
            raise ValueError("version")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        raise UpdateError(f"{path}: unreadable; run mirror update check again") from None
    signed = parse_signed_manifest(raw)
    label = verify_signed_manifest(signed, trusted_keys(home).as_mapping())
    return VerifiedRelease(signed, label, origin)


async def resolve_release(
    home: Home, manifest_source: str | None, *, mirror_mode: str
) -> VerifiedRelease:
    """The release named by ``--manifest``, else the one ``check`` remembered."""
    if manifest_source:
        return await fetch_release(home, manifest_source, mirror_mode=mirror_mode)
    release = load_saved_release(home)
    if release is None:
        raise UpdateError("no verified release yet: run mirror update check SOURCE first, "
                          "or pass --manifest SOURCE")
    return release


# --------------------------------------------------------------------------- versions


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Comparison:
    installed: str | None  # the version now installed, None if the wheel's package is not
    relation: str  # "newer", "same", "older", "unknown" (the installed version is unreadable)


def compare_with_installed(manifest: Manifest) -> Comparison:
    """How the release relates to what runs now.

    The wheel's own distribution if it is installed, else this Mirror (a fork
    that renamed its package still replaces this one).
    """
    current = installed_version(manifest.distribution) or installed_version(MIRROR_DISTRIBUTION)
    if current is None:
        return Comparison(None, "newer")
    mine = ReleaseVersion.parse_or_none(current)
    if mine is None:
        return Comparison(current, "unknown")
    theirs = manifest.release_version
    relation = "newer" if theirs > mine else "older" if theirs < mine else "same"
    return Comparison(current, relation)


def refuse_downgrade(manifest: Manifest, comparison: Comparison, *, allow: bool) -> None:
    if allow:
        return
    if comparison.relation == "older":
        raise DowngradeError(
            f"release {manifest.version} is older than the installed {comparison.installed}: "
            "refusing a downgrade (pass --allow-downgrade if you mean it)"
        )
    if comparison.relation == "unknown":
        raise DowngradeError(
            f"cannot tell whether {manifest.version} is newer than the installed "
            f"{comparison.installed} (pass --allow-downgrade to install it anyway)"
        )


# --------------------------------------------------------------------------- installing


def pip_command(wheel: Path, *, mirror_mode: str) -> list[str]:
    """The one command that installs anything. In local mode pip may not reach an index."""
    argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    if mirror_mode == "local":
        argv.append("--no-index")
    return [*argv, str(wheel)]


async def run_pip(argv: Sequence[str]) -> None:
    log.info("running %s", " ".join(argv))
    with trio.move_on_after(PIP_TIMEOUT_S) as scope:
        result = await trio.run_process(
            list(argv), capture_stdout=True, capture_stderr=True, check=False,
            stdin=subprocess.DEVNULL,
        )
    if scope.cancelled_caught:
        raise UpdateError(f"pip did not finish within {PIP_TIMEOUT_S:g} s; nothing is certain, "
                          "run mirror update install again")
    log.info("pip said: %s", result.stdout.decode(errors="replace")[-4000:])
    if result.returncode != 0:
        err = result.stderr.decode(errors="replace").strip().splitlines()
        last = next((line.strip() for line in reversed(err) if line.strip()), "no detail")
        log.info("pip failed: %s", "\n".join(err[-40:]))
        raise UpdateError(f"pip could not install the release (exit {result.returncode}): {last}")


async def verify_wheel(
    home: Home, release: VerifiedRelease, location: str, *, mirror_mode: str
) -> None:
    """Stage *location* and check it against *release*; keep nothing."""
    staging = new_staging_dir(updates_dir(home))
    try:
        await stage_wheel(location, release.manifest, staging, mirror_mode=mirror_mode)
    finally:
        remove_staging_dir(staging)


async def install_release(
    home: Home,
    release: VerifiedRelease,
    location: str | None,
    *,
    mirror_mode: str,
    allow_downgrade: bool,
    confirm: Callable[[VerifiedRelease, Comparison], Awaitable[bool]],
    runner: Runner | None = None,
) -> Comparison | None:
    """Install *release* if it is allowed and the person confirms.

    *location* is the wheel (path or URL); None means beside the manifest.
    Returns the comparison with what was installed before, or None when the
    person declined. Everything is checked before *confirm* is asked.
    *runner* runs the pip command (default :func:`run_pip`, looked up at call time).
    """
    manifest = release.manifest
    comparison = compare_with_installed(manifest)
    refuse_downgrade(manifest, comparison, allow=allow_downgrade)
    if comparison.relation == "same" and not allow_downgrade:
        raise UpdateError(f"{manifest.distribution} {manifest.version} is already installed "
                          "(pass --allow-downgrade to reinstall it)")
    staging = new_staging_dir(updates_dir(home))
    try:
        wheel = await stage_wheel(
            location or wheel_next_to(release.origin, manifest), manifest, staging,
            mirror_mode=mirror_mode,
        )
        if not await confirm(release, comparison):
            return None
        await (runner or run_pip)(pip_command(wheel, mirror_mode=mirror_mode))
    finally:
        remove_staging_dir(staging)
    log.info("installed %s", release.describe())
    return comparison

