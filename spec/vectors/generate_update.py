"""Regenerate ``update-manifest.json``: ``python spec/vectors/generate_update.py``.

A release manifest signed with a pinned test key (Ed25519 signatures are
deterministic, so the output is byte-for-byte stable), the exact bytes the
signature covers, and altered copies that a verifier must refuse. The
canonical encoding is computed here a second time, straight from the rule in
docs/updates.md, and must agree with ``node.updates`` before anything is
written. ``tests/test_update_manifest.py`` checks the package against it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import nacl.signing  # noqa: E402

from node.updates.manifest import (  # noqa: E402
    SIGNATURE_DOMAIN,
    Manifest,
    canonical_bytes,
    format_public_key,
    sign_manifest,
)

# Pinned, public, for tests only: never trust this key for real releases.
SEED = hashlib.sha256(b"mirror update-manifest test vector key").digest()
OTHER_SEED = hashlib.sha256(b"mirror update-manifest test vector other key").digest()
WHEEL_BYTES = b"not really a wheel: the bytes whose hash the manifest pins\n"


def by_the_rule(fields: dict[str, Any]) -> bytes:
    """The canonical encoding written out by hand, independent of json.dumps' options."""

    def string(text: str) -> str:
        short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                 "\t": "\\t"}
        out = []
        for ch in text:
            if ch in short:
                out.append(short[ch])
            elif ord(ch) < 0x20:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'

    parts = []
    for key in sorted(fields):
        value = fields[key]
        encoded = str(value) if isinstance(value, int) else string(value)
        parts.append(f"{string(key)}:{encoded}")
    return SIGNATURE_DOMAIN + ("{" + ",".join(parts) + "}").encode("utf-8")


def main() -> None:
    key = nacl.signing.SigningKey(SEED)
    other = nacl.signing.SigningKey(OTHER_SEED)
    manifest = Manifest(
        fork="Mirror test fork ✦",
        key=format_public_key(bytes(key.verify_key)),
        version="1.2.0rc1",
        wheel="mirror_reflect-1.2.0rc1-py3-none-any.whl",
        sha256=hashlib.sha256(WHEEL_BYTES).hexdigest(),
        size=len(WHEEL_BYTES),
        date="2026-05-01T12:00:00Z",
        notes='Fixes "quotes", back\\slashes,\ttabs and\nnew lines; café; \x01 control.',
    )
    signed = sign_manifest(manifest, key)
    covered = canonical_bytes(manifest)
    assert covered == by_the_rule(manifest.to_json()), "the encoder disagrees with the rule"

    def altered(**changes: Any) -> dict[str, Any]:
        data = signed.to_json()
        data["manifest"] = {**data["manifest"], **changes}
        return data

    other_manifest = Manifest(**{**manifest.to_json(), "key": format_public_key(
        bytes(other.verify_key))})
    vector = {
        "description": "A signed release manifest (docs/updates.md). signed_by: Ed25519 over "
                       "signature_domain + canonical JSON; refusals must fail as named.",
        "seed": SEED.hex(),
        "public_key": format_public_key(bytes(key.verify_key)),
        "signature_domain_hex": SIGNATURE_DOMAIN.hex(),
        "wheel_bytes_hex": WHEEL_BYTES.hex(),
        "manifest": manifest.to_json(),
        "signed_bytes_hex": covered.hex(),
        "signature": signed.signature.hex(),
        "signed_file": signed.to_json(),
        "refusals": [
            {"why": "the version was raised after signing", "error": "SignatureError",
             "signed_file": altered(version="1.2.0",
                                    wheel="mirror_reflect-1.2.0-py3-none-any.whl")},
            {"why": "the notes were changed", "error": "SignatureError",
             "signed_file": altered(notes="Nothing to see.")},
            {"why": "the sha256 was swapped", "error": "SignatureError",
             "signed_file": altered(sha256="00" * 32)},
            {"why": "signed by a key nobody trusts", "error": "UntrustedKeyError",
             "signed_file": sign_manifest(other_manifest, other).to_json()},
            {"why": "an unknown field", "error": "ManifestError",
             "signed_file": altered(channel="beta")},
            {"why": "the wheel's version disagrees", "error": "ManifestError",
             "signed_file": altered(wheel="mirror_reflect-9.9-py3-none-any.whl")},
            {"why": "a path in the wheel name", "error": "ManifestError",
             "signed_file": altered(wheel="../mirror_reflect-1.2.0rc1-py3-none-any.whl")},
        ],
    }
    path = HERE / "update-manifest.json"
    path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
