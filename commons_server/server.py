"""Running a Commons server: its home, hypercorn's trio worker, and ``mirror-commons``.

Home layout::

    mirror.db      the document store, as on a node (crdt/store.py; + -wal, -shm
                   and mirror.db.locks/): the Commons documents with their signed
                   envelopes, and the moderation state — unless ``--database
                   postgresql://...`` puts them (and the blind store) in PostgreSQL,
                   which several instances then share (instances.py)
    server.key     the server's Ed25519 seed (hex, mode 0600); its public half is
                   the server key readers pin, and the handshake's public group
                   secret is derived from it

Every flag has an environment variable: ``--port`` is ``MIRROR_COMMONS_PORT``,
``--author-updates-per-minute`` is ``MIRROR_COMMONS_AUTHOR_UPDATES_PER_MINUTE``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config

from crdt import StoreError, open_store

from . import limits as L
from . import serving
from .app import CommonsApp
from .blind.server import add_database_argument, add_limit_arguments, limits_from
from .blind.storage import StoreFileError
from .forwarded import parse_trusted, with_forwarded_client
from .hub import Hub
from .instances import PgInstanceBus, SharedBuckets
from .limits import CommonsLimits
from .pg_listen import ListenError, is_postgres_url

log = logging.getLogger("mirror.commons")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
ENV_PREFIX = "MIRROR_COMMONS_"
DB_NAME = "mirror.db"
OLD_DB_NAME = "commons.db"
KEY_NAME = "server.key"


class SetupError(Exception):
    """The server cannot start (one line)."""


def load_or_create_seed(home: Path) -> bytes:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / KEY_NAME
    if path.exists():
        try:
            seed = bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise SetupError(f"{path}: not a server key ({exc})") from None
        if len(seed) != 32:
            raise SetupError(f"{path}: a server key is 64 hex digits")
        return seed
    seed = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(seed.hex() + "\n")
    return seed


def read_operator_key(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        key = bytes.fromhex(Path(path).read_text().strip())
    except (OSError, ValueError) as exc:
        raise SetupError(f"{path}: not an operator public key ({exc})") from None
    if len(key) != 32:
        raise SetupError(f"{path}: an operator key is 64 hex digits (the public key)")
    return key


@asynccontextmanager
async def open_hub(
    home: Path,
    *,
    operator_key: bytes | None = None,
    limits: CommonsLimits | None = None,
    database: str | None = None,
    **hub_options: Any,
) -> AsyncIterator[Hub]:
    """The server's hub over the database in *home* (created if needed).

    With *database* (``postgresql://...``) this instance is one of several over
    that database: it announces what it commits and applies what the others
    commit (``instances.py``), and the update limits are kept there for all."""
    seed = load_or_create_seed(home)
    if database is None:
        async with _open_hub(home / DB_NAME, seed, operator_key, limits, hub_options) as hub:
            yield hub
        return
    if not is_postgres_url(database):
        raise SetupError(f"--database takes a postgresql:// address, not {database[:40]!r}")
    bus = PgInstanceBus(database, instance=os.urandom(6).hex())
    shared = SharedBuckets(database)
    try:
        async with _open_hub(database, seed, operator_key, limits,
                             {**hub_options, "instances": bus, "shared_limits": shared}
                             ) as hub, trio.open_nursery() as nursery:
            try:
                await nursery.start(hub.follow)
            except ListenError as exc:
                raise SetupError(f"cannot listen for the other instances: {exc}") from None
            yield hub
            nursery.cancel_scope.cancel()
    finally:
        bus.close()
        shared.close()


@asynccontextmanager
async def _open_hub(documents: Path | str, seed: bytes, operator_key: bytes | None,
                    limits: CommonsLimits | None, hub_options: dict[str, Any]
                    ) -> AsyncIterator[Hub]:
    """The hub over the document store at *documents* (a file, or a PostgreSQL URL)."""
    if isinstance(documents, Path):
        home = documents.parent
        if (home / OLD_DB_NAME).exists() and not (home / DB_NAME).exists():
            # Never start empty beside data we cannot read: the operator decides.
            raise SetupError(
                f"{home / OLD_DB_NAME}: a Commons database of an earlier development build; "
                f"this version keeps documents in {DB_NAME} and cannot import it. Move it "
                "out of the home to start with an empty Commons.")
    async with open_store(documents) as store:
        hub = Hub(store, seed, operator_key=operator_key, limits=limits, **hub_options)
        await hub.load()
        yield hub


def hypercorn_config(host: str, port: int) -> Config:
    return serving.hypercorn_config(
        host, port, log_name="mirror.commons.http", max_header_bytes=L.MAX_HTTP_HEADER_BYTES,
        grace_s=L.SHUTDOWN_GRACE_S, websocket_max_bytes=L.MAX_COMMONS_FRAME_BYTES + 64 * 1024,
    )


async def serve_commons(
    app: Any,  # CommonsApp, possibly with the blind store mounted (blind.with_blind_store)
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app*; ``await nursery.start(serve_commons, app)`` returns the ``http://`` URL."""
    await serving.serve_asgi(
        app, hypercorn_config(host, port), shutdown=shutdown, task_status=task_status
    )


# --------------------------------------------------------------------------- command


def _limit_fields() -> list[tuple[str, Any]]:
    defaults = CommonsLimits()
    return [(f.name, getattr(defaults, f.name)) for f in fields(CommonsLimits)]


def parse_args(argv: Sequence[str] | None, environ: dict[str, str]) -> argparse.Namespace:
    env = functools.partial(lambda name, default: environ.get(ENV_PREFIX + name, default))
    parser = argparse.ArgumentParser(
        prog="mirror-commons",
        description="Mirror's Commons server: a peer that hosts public, author-signed "
        "documents, with a read-only web view.",
        epilog="Every option can also be set in the environment: --port is "
        "MIRROR_COMMONS_PORT, --operator-key is MIRROR_COMMONS_OPERATOR_KEY, and so on. "
        "'mirror-commons migrate --home DIR --database postgresql://...' moves a Commons "
        "from SQLite into PostgreSQL.",
    )
    parser.add_argument("--home", default=env("HOME", "./commons-home"),
                        help="the server's home directory (database and server key)")
    parser.add_argument("--host", default=env("HOST", DEFAULT_HOST),
                        help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", default=env("PORT", str(DEFAULT_PORT)),
                        help=f"port; 0 picks a free one (default {DEFAULT_PORT})")
    parser.add_argument("--operator-key", default=env("OPERATOR_KEY", None), metavar="FILE",
                        help="file holding the operator's Ed25519 public key (64 hex digits)")
    parser.add_argument("--json", action="store_true",
                        help='print {"url": ..., "server_key": ...} once listening')
    parser.add_argument("--store-only", action="store_true",
                        help="serve only the blind store (it is also under /store otherwise)")
    parser.add_argument("--log-level", default=env("LOG_LEVEL", "INFO"),
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    for name, default in _limit_fields():
        parser.add_argument("--" + name.replace("_", "-"), dest=name,
                            default=env(name.upper(), str(default)), help=f"(default {default})")
    add_database_argument(parser, environ)
    parser.add_argument("--trusted-proxy", default=env("TRUSTED_PROXY", None), metavar="ADDRS",
                        help="addresses of proxies (comma-separated) whose X-Forwarded-For "
                        "names the client: per-address limits and quotas then count clients, "
                        "not the proxy")
    add_limit_arguments(parser, environ)
    args = parser.parse_args(argv)
    try:
        args.trusted_proxy = parse_trusted(args.trusted_proxy)
        args.limits = CommonsLimits(**{n: int(getattr(args, n)) for n, _ in _limit_fields()})
        args.store_limits = limits_from(args)
        args.port = int(args.port)
        if not 0 <= args.port <= 65535:
            raise ValueError(f"port must be 0-65535 (got {args.port})")
    except ValueError as exc:
        parser.error(str(exc))
    return args


async def run_server(args: argparse.Namespace) -> None:
    from .blind import build_blind_store_app, run_store_only, with_blind_store

    if args.store_only:
        await run_store_only(args, args.store_limits)
        return
    operator = read_operator_key(args.operator_key)
    blind = build_blind_store_app(Path(args.home), args.store_limits, database=args.database)
    async with open_hub(Path(args.home), operator_key=operator, limits=args.limits,
                        database=args.database) as hub, trio.open_nursery() as listening:
        await listening.start(blind.follow_other_instances)
        shutdown = trio.Event()
        app = with_blind_store(CommonsApp(hub), blind)
        if args.trusted_proxy:
            app = with_forwarded_client(app, args.trusted_proxy)
        async with trio.open_nursery() as nursery:
            url = await nursery.start(
                functools.partial(serve_commons, app, args.host, args.port,
                                  shutdown=shutdown))
            if args.json:
                print(json.dumps({"url": url, "server_key": hub.server_key.hex()}), flush=True)
            else:
                print(f"mirror-commons listening on {url} (server key {hub.server_key.hex()})",
                      flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            shutdown.set()
        listening.cancel_scope.cancel()
    blind.close()


def migrate_main(argv: Sequence[str], environ: dict[str, str]) -> int:
    """``mirror-commons migrate --home DIR --database postgresql://...``."""
    from .migrate import MigrationError, migrate

    parser = argparse.ArgumentParser(
        prog="mirror-commons migrate",
        description="Move a Commons from its home's SQLite files (documents, moderation, "
        "blind store) into an empty PostgreSQL database, and verify it there.")
    parser.add_argument("--home", default=environ.get(ENV_PREFIX + "HOME", "./commons-home"),
                        help="the server's home directory")
    add_database_argument(parser, environ)
    args = parser.parse_args(argv)
    if not is_postgres_url(args.database):
        parser.error("--database postgresql://... is required (the target)")
    logging.basicConfig(level="WARNING", stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        done = trio.run(migrate, Path(args.home), args.database)
    except (MigrationError, StoreError, StoreFileError) as exc:
        print(f"mirror-commons migrate: {exc}", file=sys.stderr)
        return 1
    print(done.describe(args.database), flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["migrate"]:
        return migrate_main(argv[1:], dict(os.environ))
    args = parse_args(argv, dict(os.environ))
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        trio.run(run_server, args)
    except (SetupError, StoreError, StoreFileError, ListenError) as exc:
        print(f"mirror-commons: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mirror-commons: cannot listen on {args.host}:{args.port} "
              f"({exc.strerror or exc})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
