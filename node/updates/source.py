"""Where manifests and wheels come from: a file path, or an http(s) URL.

A Commons server publishes a release as a document whose JSON API URL serves
the signed manifest; to this module it is just another URL. Transport security
adds nothing the signature does not already give, so plain http is accepted;
what matters is that nothing fetched is trusted before it is verified.

In ``local`` mode only this machine and the LAN may be reached (decided from the
URL without DNS, for every redirect too), and proxies from the environment are
ignored so that no third host is contacted behind the person's back.

Wheels are *staged*: copied (or downloaded) once into a private directory while
being hashed, so the file that is installed is the file that was checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx
import trio

from ..config import is_loopback_or_lan
from .errors import HashMismatchError, SourceError
from .manifest import MAX_MANIFEST_BYTES, Manifest

FETCH_TIMEOUT_S = 30.0
MAX_REDIRECTS = 5
CHUNK_BYTES = 64 * 1024
URL_SCHEMES = ("http", "https")


@dataclass(frozen=True)
class Fetched:
    data: bytes
    origin: str  # an absolute path or a URL: where the wheel is looked for next to it


def is_url(source: str) -> bool:
    return urlsplit(source).scheme in URL_SCHEMES


def _as_path(source: str) -> Path:
    parts = urlsplit(source)
    if parts.scheme == "file":
        return Path(parts.path)
    if parts.scheme and len(parts.scheme) > 1:  # not a Windows drive letter
        raise SourceError(
            f"{source}: cannot fetch from {parts.scheme}:// (use a file path or an http(s) URL; "
            "a Commons release is fetched through its http(s) URL)"
        )
    return Path(source).expanduser().absolute()


def check_reachable(url: str, mirror_mode: str) -> None:
    """Refuse a URL that the mode does not allow the node to connect to."""
    if mirror_mode == "local" and not is_loopback_or_lan(url):
        host = urlsplit(url).hostname or url
        raise SourceError(
            f"{host} is beyond this machine and the LAN, and local mode connects to "
            "neither: download the file yourself and give its path, or run: mirror mode hybrid"
        )


def _client(mirror_mode: str) -> httpx.AsyncClient:
    async def on_request(request: httpx.Request) -> None:
        check_reachable(str(request.url), mirror_mode)

    return httpx.AsyncClient(
        timeout=FETCH_TIMEOUT_S,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        trust_env=mirror_mode != "local",
        event_hooks={"request": [on_request]},
    )


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {FETCH_TIMEOUT_S:g} s"
    if isinstance(exc, httpx.TooManyRedirects):
        return f"more than {MAX_REDIRECTS} redirects"
    return str(exc) or type(exc).__name__


async def fetch_manifest(source: str, *, mirror_mode: str) -> Fetched:
    """The bytes of the manifest at *source* (at most MAX_MANIFEST_BYTES)."""
    if is_url(source):
        check_reachable(source, mirror_mode)
        chunks = bytearray()
        try:
            async with _client(mirror_mode) as client, client.stream("GET", source) as response:
                if response.status_code != 200:
                    raise SourceError(f"{source}: HTTP {response.status_code}")

                async def collect(chunk: bytes) -> None:
                    chunks.extend(chunk)
                    if len(chunks) > MAX_MANIFEST_BYTES:
                        raise SourceError(
                            f"{source}: larger than {MAX_MANIFEST_BYTES} bytes, not a manifest"
                        )

                await _consume(response, collect)
                origin = str(response.url)
        except (httpx.HTTPError, OSError) as exc:
            raise SourceError(f"{source}: cannot fetch ({_describe(exc)})") from None
        return Fetched(unwrap_commons_post(bytes(chunks)), origin)
    path = _as_path(source)
    return Fetched(await trio.to_thread.run_sync(_read_small, path), str(path))


def unwrap_commons_post(data: bytes) -> bytes:
    """The signed manifest inside a Commons thread's JSON, or *data* unchanged.

    A fork can publish a release as a Commons post whose body is the signed
    manifest; the thread's JSON API URL is then a source. Only the manifest's own
    signature is trusted: the post around it is just how it travelled.
    """
    try:
        outer = json.loads(data)
    except ValueError:
        return data
    if not isinstance(outer, dict) or "manifest" in outer:
        return data
    body = outer.get("body")
    if outer.get("kind") not in ("post", "insight") or not isinstance(body, str):
        return data
    try:
        inner = json.loads(body)
    except ValueError:
        return data
    if isinstance(inner, dict) and "manifest" in inner and "signature" in inner:
        return body.encode("utf-8")
    return data


async def _consume(response: httpx.Response, sink: Callable[[bytes], Awaitable[None]]) -> None:
    """Feed the body to *sink* chunk by chunk; *sink* raises to stop early.

    Stopping early leaves httpx's nested async generators suspended, which trio
    reports when they are collected; so the response is closed and the chain
    drained (it fails at once on the closed connection) before re-raising.
    """
    chunks = response.aiter_bytes(CHUNK_BYTES)
    try:
        async for chunk in chunks:
            await sink(chunk)
    except BaseException:
        await response.aclose()
        with contextlib.suppress(httpx.HTTPError, OSError, RuntimeError):
            async for _ in chunks:
                pass
        raise


def _read_small(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_MANIFEST_BYTES + 1)
    except IsADirectoryError:
        raise SourceError(f"{path}: is a directory, not a manifest") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise SourceError(f"{path}: larger than {MAX_MANIFEST_BYTES} bytes, not a manifest")
    return data


def wheel_next_to(origin: str, manifest: Manifest) -> str:
    """Where the wheel is expected when the person does not say: beside the manifest."""
    if is_url(origin):
        return urljoin(origin, manifest.wheel)
    return str(Path(origin).parent / manifest.wheel)


def wheel_name_of(location: str) -> str:
    if is_url(location):
        return urlsplit(location).path.rsplit("/", 1)[-1]
    return _as_path(location).name


async def stage_wheel(
    location: str, manifest: Manifest, staging: Path, *, mirror_mode: str
) -> Path:
    """Copy or download the wheel into *staging*; return it once it matches *manifest*.

    Checks the file name, the size (before reading past it) and the SHA-256; a
    file that fails is deleted and never handed on.
    """
    name = wheel_name_of(location)
    if name != manifest.wheel:
        raise HashMismatchError(
            f"the file is named {name!r} but release {manifest.version} is {manifest.wheel!r}"
        )
    target = staging / manifest.wheel
    digest = hashlib.sha256()
    try:
        if is_url(location):
            check_reachable(location, mirror_mode)
            await _download(location, target, digest, manifest.size, mirror_mode)
        else:
            await trio.to_thread.run_sync(_copy, _as_path(location), target, digest, manifest.size)
        got = digest.hexdigest()
        if got != manifest.sha256:
            raise HashMismatchError(
                f"{manifest.wheel}: SHA-256 {got[:16]}… is not the {manifest.sha256[:16]}… "
                f"that release {manifest.version} promises; refusing it"
            )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def _too_big(manifest_size: int) -> HashMismatchError:
    return HashMismatchError(
        f"the wheel is larger than the {manifest_size} bytes its manifest promises; refusing it"
    )


def _size_mismatch(got: int, manifest_size: int) -> HashMismatchError:
    return HashMismatchError(
        f"the wheel has {got} bytes, not the {manifest_size} its manifest promises; refusing it"
    )


def _copy(source: Path, target: Path, digest: hashlib._Hash, size: int) -> None:
    try:
        with source.open("rb") as src, _private_file(target) as dst:
            copied = 0
            while chunk := src.read(CHUNK_BYTES):
                copied += len(chunk)
                if copied > size:
                    raise _too_big(size)
                digest.update(chunk)
                dst.write(chunk)
    except IsADirectoryError:
        raise SourceError(f"{source}: is a directory, not a wheel") from None
    except FileNotFoundError:
        raise SourceError(f"{source}: no such file") from None
    except OSError as exc:
        raise SourceError(f"{source}: cannot read ({exc.strerror})") from None
    if copied != size:
        raise _size_mismatch(copied, size)


async def _download(
    url: str, target: Path, digest: hashlib._Hash, size: int, mirror_mode: str
) -> None:
    try:
        async with _client(mirror_mode) as client, client.stream("GET", url) as response:
            if response.status_code != 200:
                raise SourceError(f"{url}: HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > size:
                raise _too_big(size)
            copied = 0
            with _private_file(target) as dst:

                async def write(chunk: bytes) -> None:
                    nonlocal copied
                    copied += len(chunk)
                    if copied > size:
                        raise _too_big(size)
                    digest.update(chunk)
                    await trio.to_thread.run_sync(dst.write, chunk)

                await _consume(response, write)
    except (httpx.HTTPError, OSError) as exc:
        raise SourceError(f"{url}: cannot fetch ({_describe(exc)})") from None
    if copied != size:
        raise _size_mismatch(copied, size)


def _private_file(path: Path) -> BinaryIO:
    """A new file only this user can read; an existing file is never reused."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def new_staging_dir(updates_dir: Path) -> Path:
    """A fresh private directory under *updates_dir* for one wheel."""
    updates_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="staging-", dir=updates_dir))


def remove_staging_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
