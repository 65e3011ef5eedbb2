"""Release manifests: what a fork publishes, how it is signed, how it is checked.

A signed manifest is a JSON object ``{"manifest": {...}, "signature": "HEX"}``.
The manifest holds exactly these fields::

    format   "mirror-release/1"
    fork     the publishing fork's name (1-64 printable characters)
    key      the fork's Ed25519 public key, "ed25519:" + 64 lowercase hex digits
    version  the release, e.g. "0.2.0", "1.0rc1", "1.0.post2" (a subset of PEP 440)
    wheel    the wheel's file name; its version part equals ``version``
    sha256   the wheel's SHA-256, 64 lowercase hex digits
    size     the wheel's size in bytes (an integer)
    date     when it was released, "YYYY-MM-DDTHH:MM:SSZ" (UTC)
    notes    release notes (text, at most MAX_NOTES_CHARS characters)

The signature is Ed25519 (RFC 8032) over ``SIGNATURE_DOMAIN`` followed by the
canonical encoding of the manifest: JSON with keys sorted, no whitespace
(separators ``,`` and ``:``), UTF-8, non-ASCII characters written as themselves,
and in strings only ``"`` ``\\`` and U+0000-U+001F escaped (``\\b \\f \\n \\r \\t``
in short form, the others as ``\\u00xx`` with lowercase hex). ``size`` is the
only number. This is what :func:`canonical_bytes` returns; the verifier
re-encodes the parsed manifest, so how the file itself is laid out does not
matter. ``spec/vectors/update-manifest.json`` pins an example.

Everything here is pure (no I/O); :func:`sign_manifest` takes the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import nacl.exceptions
import nacl.signing

from .errors import ManifestError, SignatureError, UntrustedKeyError

MANIFEST_FORMAT = "mirror-release/1"
SIGNATURE_DOMAIN = b"mirror release manifest v1\n"
KEY_PREFIX = "ed25519:"
MAX_MANIFEST_BYTES = 64 * 1024
MAX_NOTES_CHARS = 8000
MAX_FORK_CHARS = 64
MAX_WHEEL_BYTES = 256 * 1024 * 1024

FIELDS = ("format", "fork", "key", "version", "wheel", "sha256", "size", "date", "notes")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_VERSION = re.compile(
    r"(?P<release>(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*)){0,3})"
    r"(?:(?P<phase>a|b|rc)(?P<pre>0|[1-9][0-9]*))?"
    r"(?:\.post(?P<post>0|[1-9][0-9]*))?"
)
# name-version(-build)?-python-abi-platform.whl, with the name already escaped as
# wheels require (runs of -_. become _), so no path separator can slip through.
_WHEEL = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9_.]*[A-Za-z0-9])?)-(?P<version>[A-Za-z0-9_.!+]+)"
    r"(?:-[0-9][A-Za-z0-9_.]*)?-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl"
)
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_PHASES = {"a": 0, "b": 1, "rc": 2}


# --------------------------------------------------------------------------- versions


@dataclass(frozen=True, order=True)
class ReleaseVersion:
    """A version Mirror can order: release numbers, optional a/b/rc, optional .post."""

    key: tuple[tuple[int, ...], tuple[int, int], int]
    text: str

    @classmethod
    def parse(cls, text: str) -> ReleaseVersion:
        match = _VERSION.fullmatch(text)
        if match is None:
            raise ManifestError(
                f"version {text!r} is not of the form 1.2.3 (optionally a1, b1, rc1, .post1)"
            )
        release = tuple(int(n) for n in match["release"].split("."))
        release += (0,) * (4 - len(release))  # 1.0 == 1.0.0
        phase = (_PHASES[match["phase"]], int(match["pre"])) if match["phase"] else (3, 0)
        post = int(match["post"]) if match["post"] is not None else -1
        return cls((release, phase, post), text)

    @classmethod
    def parse_or_none(cls, text: str) -> ReleaseVersion | None:
        try:
            return cls.parse(text)
        except ManifestError:
            return None

    def __str__(self) -> str:
        return self.text


# --------------------------------------------------------------------------- keys


def format_public_key(raw: bytes) -> str:
    return KEY_PREFIX + raw.hex()


def parse_public_key(text: str) -> bytes:
    """``ed25519:`` + 64 hex digits → the 32 raw bytes."""
    body = text.strip()
    if not body.startswith(KEY_PREFIX) or not _HEX64.fullmatch(body[len(KEY_PREFIX):].lower()):
        raise ManifestError(f"{short_key(text)} is not a key of the form ed25519:<64 hex digits>")
    return bytes.fromhex(body[len(KEY_PREFIX):])


def normalize_public_key(text: str) -> str:
    return format_public_key(parse_public_key(text))


def short_key(key: str) -> str:
    """A key shortened for messages: ``ed25519:1a2b3c4d…``."""
    key = key.strip()
    return key if len(key) <= 24 else key[:24] + "…"


# --------------------------------------------------------------------------- the manifest


def validate_fork(name: str) -> str:
    if not 1 <= len(name) <= MAX_FORK_CHARS or not name.isprintable():
        raise ManifestError(f"the fork name must be 1-{MAX_FORK_CHARS} printable characters")
    return name


@dataclass(frozen=True)
class Manifest:
    fork: str
    key: str
    version: str
    wheel: str
    sha256: str
    size: int
    date: str
    notes: str
    format: str = MANIFEST_FORMAT

    @property
    def release_version(self) -> ReleaseVersion:
        return ReleaseVersion.parse(self.version)

    @property
    def distribution(self) -> str:
        """The wheel's distribution name, normalized as pip compares them."""
        match = _WHEEL.fullmatch(self.wheel)
        assert match is not None  # validated on construction
        return re.sub(r"[-_.]+", "-", match["name"]).lower()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError("the manifest must be a JSON object")
        missing = [f for f in FIELDS if f not in data]
        if missing:
            raise ManifestError(f"the manifest has no {missing[0]!r}")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ManifestError(f"the manifest has an unknown field {unknown[0]!r}")
        if data["format"] != MANIFEST_FORMAT:
            raise ManifestError(
                f"manifest format {data['format']!r} is not {MANIFEST_FORMAT!r} "
                "(a newer Mirror may read it)"
            )
        for name in FIELDS:
            expected = int if name == "size" else str
            value = data[name]
            if not isinstance(value, expected) or isinstance(value, bool):
                kind = "an integer" if expected is int else "text"
                raise ManifestError(f"the manifest's {name!r} must be {kind}")
        manifest = cls(**{name: data[name] for name in FIELDS})
        manifest.validate()
        return manifest

    def validate(self) -> Manifest:
        validate_fork(self.fork)
        parse_public_key(self.key)
        if self.key != normalize_public_key(self.key):
            raise ManifestError("the manifest's key must be written in lowercase hex")
        ReleaseVersion.parse(self.version)
        wheel = _WHEEL.fullmatch(self.wheel)
        if wheel is None:
            raise ManifestError(f"{self.wheel!r} is not a wheel file name "
                                "(name-version-python-abi-platform.whl)")
        if wheel["version"] != self.version:
            raise ManifestError(
                f"the wheel {self.wheel!r} is not version {self.version} as the manifest says"
            )
        if not _HEX64.fullmatch(self.sha256):
            raise ManifestError("the manifest's sha256 must be 64 lowercase hex digits")
        if not 0 < self.size <= MAX_WHEEL_BYTES:
            raise ManifestError(f"the manifest's size must be 1..{MAX_WHEEL_BYTES} bytes")
        try:
            datetime.strptime(self.date, _DATE_FORMAT)
        except ValueError:
            raise ManifestError(
                f"the manifest's date {self.date!r} is not YYYY-MM-DDTHH:MM:SSZ"
            ) from None
        if len(self.notes) > MAX_NOTES_CHARS:
            raise ManifestError(f"the release notes are longer than {MAX_NOTES_CHARS} characters")
        try:
            canonical_bytes(self)
        except UnicodeEncodeError:
            raise ManifestError("the manifest holds text that is not valid Unicode") from None
        return self


def canonical_bytes(manifest: Manifest) -> bytes:
    """The exact bytes a signature covers (see the module docstring)."""
    body = json.dumps(
        manifest.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return SIGNATURE_DOMAIN + body.encode("utf-8")


def release_date(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).astimezone(UTC).strftime(_DATE_FORMAT)


# --------------------------------------------------------------------------- signing


@dataclass(frozen=True)
class SignedManifest:
    manifest: Manifest
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest.to_json(), "signature": self.signature.hex()}

    def dumps(self) -> str:
        """The file a maintainer publishes: readable, and stable for a given release."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def sign_manifest(manifest: Manifest, signing_key: nacl.signing.SigningKey) -> SignedManifest:
    manifest.validate()
    own = format_public_key(bytes(signing_key.verify_key))
    if manifest.key != own:
        raise ManifestError("the manifest names another key than the one signing it")
    signature = signing_key.sign(canonical_bytes(manifest)).signature
    return SignedManifest(manifest, signature)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise ManifestError(f"the manifest repeats the field {key!r}")
        data[key] = value
    return data


def parse_signed_manifest(raw: bytes) -> SignedManifest:
    """Parse (not verify) a signed manifest file; any malformation is a ManifestError."""
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError:
        raise ManifestError("the manifest is not UTF-8 text") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ManifestError(f"the manifest is not valid JSON ({detail or 'too deep'})") from None
    if not isinstance(data, dict) or set(data) != {"manifest", "signature"}:
        raise ManifestError('a signed manifest is {"manifest": {...}, "signature": "..."}')
    signature = data["signature"]
    if not isinstance(signature, str) or not re.fullmatch(r"[0-9a-f]{128}", signature):
        raise ManifestError("the signature must be 128 lowercase hex digits")
    return SignedManifest(Manifest.from_json(data["manifest"]), bytes.fromhex(signature))


def verify_signed_manifest(signed: SignedManifest, trusted: dict[str, str]) -> str:
    """Check *signed* against *trusted* (key → label); return the key's label.

    The key must be trusted before its signature is even looked at, so an
    unknown key is reported as unknown, never as "bad signature".
    """
    manifest = signed.manifest
    label = trusted.get(manifest.key)
    if label is None:
        raise UntrustedKeyError(
            f"release {manifest.version} of fork {manifest.fork!r} is signed by "
            f"{short_key(manifest.key)}, which you do not trust "
            f"(to follow that fork: mirror update keys add {manifest.key} --label NAME)"
        )
    verify_key = nacl.signing.VerifyKey(parse_public_key(manifest.key))
    try:
        verify_key.verify(canonical_bytes(manifest), signed.signature)
    except nacl.exceptions.CryptoError:  # BadSignatureError, or a key that is no point
        raise SignatureError(
            f"bad signature on release {manifest.version} claiming key {label!r}: "
            "the manifest was altered or not signed by that key; nothing was trusted"
        ) from None
    return label


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
