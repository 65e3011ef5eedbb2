"""Sovereign updates: signed release manifests, the keys a person follows, installs on request.

Modules: ``manifest`` (format, canonical encoding, signatures; pure),
``trust`` (HOME/trusted-keys.json), ``source`` (files and http(s) URLs, local-mode
reachability, wheel staging), ``release`` (check / verify / install for a home),
``errors`` (the refusal tree). ``node.cli.update`` is the person's command,
``mirror_tools.release`` the maintainer's (``mirror-release``). See docs/updates.md.
"""

from __future__ import annotations

from .errors import (
    DowngradeError,
    HashMismatchError,
    ManifestError,
    SignatureError,
    SourceError,
    UntrustedKeyError,
    UpdateError,
)
from .manifest import (
    MANIFEST_FORMAT,
    SIGNATURE_DOMAIN,
    Manifest,
    ReleaseVersion,
    SignedManifest,
    canonical_bytes,
    parse_signed_manifest,
    sign_manifest,
    verify_signed_manifest,
)
from .trust import TrustedKey, TrustedKeys

__all__ = [
    "MANIFEST_FORMAT",
    "SIGNATURE_DOMAIN",
    "DowngradeError",
    "HashMismatchError",
    "Manifest",
    "ManifestError",
    "ReleaseVersion",
    "SignatureError",
    "SignedManifest",
    "SourceError",
    "TrustedKey",
    "TrustedKeys",
    "UntrustedKeyError",
    "UpdateError",
    "canonical_bytes",
    "parse_signed_manifest",
    "sign_manifest",
    "verify_signed_manifest",
]
