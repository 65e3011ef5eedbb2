"""Serving the blind store alone with hypercorn's trio worker.

``python -m commons_server.blind --home DIR [--host H] [--port P] [--json]``
runs it; ``mirror-commons --store-only`` calls :func:`run_store_only` with the
same arguments. :func:`serve_blind_store` is what tests use:
``await nursery.start(serve_blind_store, app, "127.0.0.1", 0)`` returns the
bound ``http://host:port`` URL.

Put it behind a TLS-terminating proxy (or give hypercorn a certificate) when it
is reachable beyond loopback: the bearer tokens must travel over HTTPS.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path

import trio
from hypercorn.config import Config

from .. import serving
from ..pg_listen import ListenError
from .app import BlindStoreApp, build_blind_store_app
from .limits import StoreLimits
from .storage import StoreFileError

log = logging.getLogger("mirror.blindstore")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
MAX_HTTP_HEADER_BYTES = 8 * 1024
SHUTDOWN_GRACE_S = 2.0


def hypercorn_config(host: str, port: int) -> Config:
    return serving.hypercorn_config(
        host, port, log_name="mirror.blindstore.http", max_header_bytes=MAX_HTTP_HEADER_BYTES,
        grace_s=SHUTDOWN_GRACE_S, app_queue=4,
    )


async def serve_blind_store(
    app: BlindStoreApp,
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* until cancelled (or *shutdown* is set); reports the bound URL."""
    await serving.serve_asgi(
        app, hypercorn_config(host, port), shutdown=shutdown, task_status=task_status
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a store run alone (shared with ``mirror-commons --store-only``)."""
    parser.add_argument("--home", required=True, help="directory of the store's database")
    add_database_argument(parser)
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port; 0 picks a free one (default {DEFAULT_PORT})")
    parser.add_argument("--json", action="store_true",
                        help='print {"url": ...} as the first line once listening')


def add_database_argument(parser: argparse.ArgumentParser,
                          environ: Mapping[str, str] | None = None) -> None:
    environ = os.environ if environ is None else environ
    parser.add_argument(
        "--database", default=environ.get("MIRROR_COMMONS_DATABASE") or None,
        metavar="URL",
        help="postgresql://... : keep everything in this PostgreSQL database, which "
        "several instances may share (default: SQLite files in the home)")


STORE_FLAG_PREFIX = "--store-"
STORE_ENV_PREFIX = "MIRROR_STORE_"


def add_limit_arguments(parser: argparse.ArgumentParser,
                        environ: Mapping[str, str] | None = None) -> None:
    """A flag per store limit: ``--store-max-store-bytes`` (or the environment's
    ``MIRROR_STORE_MAX_STORE_BYTES``); read them with :func:`limits_from`."""
    environ = os.environ if environ is None else environ
    group = parser.add_argument_group("blind store limits (see docs/security.md)")
    for f in fields(StoreLimits):
        default = getattr(StoreLimits(), f.name)
        group.add_argument(STORE_FLAG_PREFIX + f.name.replace("_", "-"), dest="store_" + f.name,
                           default=environ.get(STORE_ENV_PREFIX + f.name.upper(), default),
                           metavar="N", help=f"(default {default})")


def limits_from(args: argparse.Namespace) -> StoreLimits:
    """The limits :func:`add_limit_arguments` read; ValueError names a bad one."""
    values = {}
    for f in fields(StoreLimits):
        raw = getattr(args, "store_" + f.name)
        kind = type(getattr(StoreLimits(), f.name))
        try:
            values[f.name] = kind(float(raw)) if kind is int else kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{STORE_FLAG_PREFIX}{f.name.replace('_', '-')}: "
                             f"not a number: {raw!r}") from None
    return StoreLimits(**values)


async def run_store_only(args: argparse.Namespace, limits: StoreLimits | None = None) -> None:
    """Serve the blind store alone until SIGTERM/SIGINT."""
    app = build_blind_store_app(Path(args.home), limits, database=args.database)
    shutdown = trio.Event()
    try:
        async with trio.open_nursery() as listening:
            await listening.start(app.follow_other_instances)
            async with trio.open_nursery() as nursery:
                url = await nursery.start(functools.partial(
                    serve_blind_store, app, args.host, args.port, shutdown=shutdown))
                if args.json:
                    print(json.dumps({"url": url}), flush=True)
                else:
                    print(f"mirror blind store listening on {url}", flush=True)
                with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                    async for _ in signals:
                        break
                shutdown.set()
            listening.cancel_scope.cancel()
    finally:
        app.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m commons_server.blind",
        description="Mirror's blind store alone: keeps people's encrypted device updates "
        "and snapshots, which it can neither read nor merge.",
    )
    add_arguments(parser)
    add_limit_arguments(parser)
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"port must be 0-65535 (got {args.port})")
    try:
        limits = limits_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        trio.run(run_store_only, args, limits)
    except (StoreFileError, ListenError) as exc:
        print(f"blind store: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"blind store: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0
