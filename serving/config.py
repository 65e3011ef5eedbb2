"""hypercorn's ``Config`` built one way for every server, serving an app until a
shutdown event, and limits dataclasses read from flags and the environment."""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

import trio
from hypercorn.config import Config

L = TypeVar("L")


def bind_address(host: str, port: int) -> str:
    """hypercorn's bind text: IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def hypercorn_config(
    host: str,
    port: int,
    *,
    log_name: str,
    max_header_bytes: int,
    grace_s: float,
    websocket_max_bytes: int | None = None,
    app_queue_messages: int | None = None,
    http11_only: bool = False,
    config: Config | None = None,
) -> Config:
    """A Config serving on *host*:*port* with our defaults: no access log (it would
    keep addresses and timing for no need), no ``server`` header, errors to the
    *log_name* logger, request heads up to *max_header_bytes*, *grace_s* to finish
    on shutdown. *config* is a fresh instance of a Config subclass to fill instead
    of a plain one.

    *http11_only*: hypercorn cannot turn HTTP/2 off (h2c, prior knowledge); keep
    such a connection to one stream with heads as small as over HTTP/1.1, and
    offer no h2 by ALPN under TLS (the relay refuses HTTP/2 requests itself)."""
    config = Config() if config is None else config
    config.bind = [bind_address(host, port)]
    config.h11_max_incomplete_size = max_header_bytes
    config.graceful_timeout = grace_s
    config.accesslog = None
    config.errorlog = logging.getLogger(log_name)
    config.include_server_header = False
    if websocket_max_bytes is not None:
        config.websocket_max_message_size = websocket_max_bytes
    if app_queue_messages is not None:
        config.max_app_queue_size = app_queue_messages
    if http11_only:
        config.h2_max_concurrent_streams = 1
        config.h2_max_header_list_size = max_header_bytes
        config.alpn_protocols = ["http/1.1"]
    return config


async def serve_asgi(
    app: Any,
    config: Config,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* until cancelled (or *shutdown* is set, then gracefully); reports
    the bound ``http://host:port`` URL through *task_status*."""
    import hypercorn.trio

    trigger = shutdown.wait if shutdown is not None else None
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(
            functools.partial(
                hypercorn.trio.serve, app, config, mode="asgi", shutdown_trigger=trigger
            )
        )
        task_status.started(binds[0])


def add_limit_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    limits_type: type[Any],
    environ: Mapping[str, str],
    *,
    env_prefix: str,
    flag_prefix: str = "",
) -> None:
    """A flag per field of the limits dataclass *limits_type*: field ``max_frame_bytes``
    is ``--{flag_prefix}max-frame-bytes``, defaulting to the environment's
    ``{env_prefix}MAX_FRAME_BYTES``, then to the field's default. Read the values
    back with :func:`limits_from_flags`."""
    defaults = limits_type()
    for f in fields(limits_type):
        default = getattr(defaults, f.name)
        parser.add_argument("--" + flag_prefix + f.name.replace("_", "-"),
                            dest=flag_prefix.replace("-", "_") + f.name,
                            default=environ.get(env_prefix + f.name.upper(), default),
                            metavar="N", help=f"(default {default})")


def limits_from_flags(args: argparse.Namespace, limits_type: type[L], *,
                      flag_prefix: str = "") -> L:
    """The limits :func:`add_limit_flags` read, each converted to its default's type;
    ValueError names the flag of a value that is not a number or not allowed."""
    defaults = limits_type()
    values: dict[str, Any] = {}
    for f in fields(limits_type):  # type: ignore[arg-type]
        raw = getattr(args, flag_prefix.replace("-", "_") + f.name)
        kind = type(getattr(defaults, f.name))
        try:
            values[f.name] = _whole(raw) if kind is int else kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"--{flag_prefix}{f.name.replace('_', '-')}: "
                             f"not a number: {raw!r}") from None
    return limits_type(**values)


def _whole(raw: object) -> int:
    """A whole number written as one (``"1000"``, ``"1e6"``); ValueError for ``"1.5"``."""
    number = float(raw)  # type: ignore[arg-type]
    if not number.is_integer():
        raise ValueError(raw)
    return int(number)
