"""Release manifests and trusted keys, without any I/O but the trust file.

The known-answer vector (spec/vectors/update-manifest.json) pins the canonical
encoding and the signature; its refusals must fail with the named error.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.updates import errors
from node.updates.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ReleaseVersion,
    SignedManifest,
    canonical_bytes,
    file_sha256,
    format_public_key,
    parse_signed_manifest,
    sign_manifest,
    verify_signed_manifest,
)
from node.updates.trust import TrustedKeys
from tests.helpers import REPO

VECTOR: dict[str, Any] = json.loads(
    (REPO / "spec" / "vectors" / "update-manifest.json").read_text(encoding="utf-8")
)
KEY = nacl.signing.SigningKey(bytes(range(32)))
PUBLIC = format_public_key(bytes(KEY.verify_key))


def manifest(**changes: Any) -> Manifest:
    base = Manifest(fork="upstream", key=PUBLIC, version="0.2.0",
                    wheel="mirror_reflect-0.2.0-py3-none-any.whl", sha256="ab" * 32, size=10,
                    date="2026-05-01T12:00:00Z", notes="notes")
    return replace(base, **changes)


def raw(signed: SignedManifest | dict[str, Any]) -> bytes:
    data = signed.to_json() if isinstance(signed, SignedManifest) else signed
    return json.dumps(data).encode()


# --------------------------------------------------------------------------- the vector


def test_the_vector_reproduces_byte_for_byte() -> None:
    key = nacl.signing.SigningKey(bytes.fromhex(VECTOR["seed"]))
    assert format_public_key(bytes(key.verify_key)) == VECTOR["public_key"]
    m = Manifest.from_json(VECTOR["manifest"])
    assert canonical_bytes(m).hex() == VECTOR["signed_bytes_hex"]
    assert canonical_bytes(m).startswith(bytes.fromhex(VECTOR["signature_domain_hex"]))
    assert sign_manifest(m, key).signature.hex() == VECTOR["signature"]
    assert m.sha256 == file_sha256(bytes.fromhex(VECTOR["wheel_bytes_hex"]))
    assert m.size == len(bytes.fromhex(VECTOR["wheel_bytes_hex"]))


def test_the_vector_verifies_with_its_key_trusted() -> None:
    signed = parse_signed_manifest(raw(VECTOR["signed_file"]))
    assert verify_signed_manifest(signed, {VECTOR["public_key"]: "test"}) == "test"
    # Layout does not matter: the verifier re-encodes what it parsed.
    pretty = json.dumps(VECTOR["signed_file"], indent=7, ensure_ascii=True).encode()
    assert verify_signed_manifest(parse_signed_manifest(pretty), {VECTOR["public_key"]: "t"})


@pytest.mark.parametrize("case", VECTOR["refusals"], ids=lambda c: c["why"])
def test_the_vector_refusals(case: dict[str, Any]) -> None:
    expected = getattr(errors, case["error"])
    with pytest.raises(expected):
        signed = parse_signed_manifest(raw(case["signed_file"]))
        verify_signed_manifest(signed, {VECTOR["public_key"]: "test"})


# --------------------------------------------------------------------------- signatures


def test_sign_then_verify_and_every_field_is_covered() -> None:
    signed = sign_manifest(manifest(), KEY)
    assert verify_signed_manifest(parse_signed_manifest(raw(signed)), {PUBLIC: "up"}) == "up"
    for name, value in [("fork", "other"), ("notes", "notes!"), ("size", 11),
                        ("date", "2026-05-01T12:00:01Z"), ("sha256", "cd" * 32)]:
        data = signed.to_json()
        data["manifest"][name] = value
        with pytest.raises(errors.SignatureError, match="bad signature"):
            verify_signed_manifest(parse_signed_manifest(raw(data)), {PUBLIC: "up"})


def test_an_unknown_key_is_refused_before_its_signature_is_looked_at() -> None:
    signed = sign_manifest(manifest(), KEY)
    data = signed.to_json()
    data["signature"] = "00" * 64
    with pytest.raises(errors.UntrustedKeyError, match="which you do not trust"):
        verify_signed_manifest(parse_signed_manifest(raw(data)), {})


def test_a_key_can_sign_only_manifests_that_name_it() -> None:
    other = format_public_key(bytes(nacl.signing.SigningKey(bytes(32)).verify_key))
    with pytest.raises(errors.ManifestError, match="another key"):
        sign_manifest(manifest(key=other), KEY)


def test_a_signature_under_another_domain_does_not_verify() -> None:
    m = manifest()
    body = canonical_bytes(m)[len(b"mirror release manifest v1\n"):]
    forged = SignedManifest(m, KEY.sign(body).signature)
    with pytest.raises(errors.SignatureError):
        verify_signed_manifest(parse_signed_manifest(raw(forged)), {PUBLIC: "up"})


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(extra=1), "signed manifest is"),
        (lambda d: d.update(signature="AB" * 64), "lowercase hex"),
        (lambda d: d.update(signature="ab" * 63), "128 lowercase hex"),
        (lambda d: d["manifest"].pop("size"), "no 'size'"),
        (lambda d: d["manifest"].update(size=True), "must be an integer"),
        (lambda d: d["manifest"].update(size=0), "size must be"),
        (lambda d: d["manifest"].update(version=2), "must be text"),
        (lambda d: d["manifest"].update(format="mirror-release/2"), "newer Mirror"),
        (lambda d: d["manifest"].update(version="0.2.0-beta"), "is not of the form"),
        (lambda d: d["manifest"].update(wheel="mirror_reflect-0.2.0.tar.gz"), "not a wheel"),
        (lambda d: d["manifest"].update(wheel="a/mirror_reflect-0.2.0-py3-none-any.whl"),
         "not a wheel"),
        (lambda d: d["manifest"].update(wheel="mirror_reflect-0.3.0-py3-none-any.whl"),
         "is not version"),
        (lambda d: d["manifest"].update(sha256="AB" * 32), "sha256"),
        (lambda d: d["manifest"].update(key="ed25519:" + "AB" * 32), "lowercase"),
        (lambda d: d["manifest"].update(key="rsa:1234"), "not a key"),
        (lambda d: d["manifest"].update(date="2026-05-01"), "YYYY-MM-DD"),
        (lambda d: d["manifest"].update(fork=""), "fork name"),
        (lambda d: d["manifest"].update(fork="a\nb"), "fork name"),
        (lambda d: d["manifest"].update(notes="x" * 8001), "longer than"),
        (lambda d: d.update(manifest=[]), "JSON object"),
    ],
)
def test_malformed_manifests_are_refused(mutate: Any, message: str) -> None:
    data = sign_manifest(manifest(), KEY).to_json()
    mutate(data)
    with pytest.raises(errors.ManifestError, match=message):
        parse_signed_manifest(raw(data))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "larger than"),
        (b"[" * 30_000 + b"]" * 30_000, "not valid JSON"),
        (b'{"manifest": {}, "manifest": {}, "signature": ""}', "repeats the field"),
        (b" " * (MAX_MANIFEST_BYTES + 1), "larger than"),
    ],
)
def test_garbage_is_a_manifest_error(blob: bytes, message: str) -> None:
    with pytest.raises(errors.ManifestError, match=message):
        parse_signed_manifest(blob)


def test_versions_order_as_pep_440_does() -> None:
    order = ["0.1", "0.1.1", "0.2.0a1", "0.2.0a2", "0.2.0b1", "0.2.0rc1", "0.2", "0.2.0.post1",
             "0.10.0", "1.0.0"]
    parsed = [ReleaseVersion.parse(v) for v in order]
    assert parsed == sorted(parsed)
    assert ReleaseVersion.parse("1.0").key == ReleaseVersion.parse("1.0.0").key
    assert ReleaseVersion.parse_or_none("0.1.0.dev3+g1234") is None
    assert ReleaseVersion.parse_or_none("01.2") is None


def test_the_distribution_is_normalized_from_the_wheel_name() -> None:
    assert manifest().distribution == "mirror-reflect"
    m = manifest(wheel="Mirror_Fork.x-0.2.0-1build-py3-none-any.whl")
    assert m.validate().distribution == "mirror-fork-x"


# --------------------------------------------------------------------------- trusted keys


def test_keys_are_added_listed_and_removed_by_key_or_label(tmp_path: Path) -> None:
    keys = TrustedKeys(tmp_path / "trusted-keys.json")
    assert keys.load() == ()
    other = format_public_key(bytes(nacl.signing.SigningKey(bytes(32)).verify_key))
    keys.add(PUBLIC.upper().replace("ED25519:", "ed25519:"), "upstream")
    keys.add(other, "my friend's fork")
    assert stat.S_IMODE((tmp_path / "trusted-keys.json").stat().st_mode) == 0o600
    assert keys.as_mapping() == {PUBLIC: "upstream", other: "my friend's fork"}
    assert keys.remove("upstream").key == PUBLIC
    assert keys.remove(other).label == "my friend's fork"
    assert keys.load() == ()


@pytest.mark.parametrize(
    ("key", "label", "message"),
    [
        (PUBLIC, "again", "already trusted as 'upstream'"),
        ("OTHER", "upstream", "already used"),
        ("ed25519:1234", "x", "not a key"),
        ("OTHER", "", "label must be"),
        ("OTHER", "ed25519:abc", "cannot look like a key"),
    ],
)
def test_adding_refuses_duplicates_and_nonsense(
    tmp_path: Path, key: str, label: str, message: str
) -> None:
    keys = TrustedKeys(tmp_path / "trusted-keys.json")
    keys.add(PUBLIC, "upstream")
    if key == "OTHER":
        key = format_public_key(bytes(nacl.signing.SigningKey(bytes(32)).verify_key))
    with pytest.raises(errors.UpdateError, match=message):
        keys.add(key, label)
    assert len(keys.load()) == 1


def test_removing_an_unknown_key_says_so(tmp_path: Path) -> None:
    with pytest.raises(errors.UpdateError, match="no trusted key"):
        TrustedKeys(tmp_path / "trusted-keys.json").remove("nobody")


def test_a_trust_file_others_can_write_is_refused(tmp_path: Path) -> None:
    keys = TrustedKeys(tmp_path / "trusted-keys.json")
    keys.add(PUBLIC, "upstream")
    os.chmod(keys.path, 0o666)
    with pytest.raises(errors.UpdateError, match="others may write it"):
        keys.load()


@pytest.mark.parametrize("content", ["", "[]", '{"version": 2, "keys": []}',
                                     '{"version": 1, "keys": [{"key": "x"}]}'])
def test_a_damaged_trust_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "trusted-keys.json"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(errors.UpdateError, match="not a trusted-keys file"):
        TrustedKeys(path).load()
