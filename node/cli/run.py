"""Running a parsed command: the home, the log, the application layer opened on it,
and every failure turned into one line on stderr and an exit status (tracebacks go
to the log file in the home)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import TextIO

import trio

from crdt import StoreError, ValueRangeError

from ..app import open_mirror
from ..errors import ConfigError, MirrorError
from ..home import Home, setup_logging
from .passphrase import unlock_home

log = logging.getLogger("mirror.cli")


def handler_of(args: argparse.Namespace) -> object:
    """The function to run: what the command's parser set (an action of ``commons``,
    ``update`` …), else the command table's ``module:function``."""
    if args.handler is not None:
        return args.handler
    command = args.command
    return getattr(importlib.import_module(command.module), command.function)


async def run(args: argparse.Namespace, out: TextIO) -> int:
    home = Home.resolve(args.home)
    handler = handler_of(args)
    if not args.command.opens_home:  # commands on the home's files, not an open home
        result: int = await handler(home, args, out)  # type: ignore[operator]
        return result
    cipher = await unlock_home(home, args)
    async with open_mirror(home, cipher=cipher, tolerate_bad_config=True) as mirror:
        problem = mirror.core.config_problem
        if problem is not None and not args.command.config_tolerant:
            raise ConfigError(f"{problem.error} (mirror status explains; mirror mode and "
                              "mirror engine still work)")
        status: int = await handler(mirror, args, out)  # type: ignore[operator]
        return status


def execute(args: argparse.Namespace) -> int:
    """Run *args* (from :func:`node.cli.main.parse`); the exit status."""
    try:
        home = Home.resolve(args.home)
        setup_logging(home, verbose=args.verbose)
        status = trio.run(run, args, sys.stdout)
    except BrokenPipeError:
        # the reader went away (mirror list | head): not an error; stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print("mirror: interrupted", file=sys.stderr)
        return 130
    except (MirrorError, StoreError, ValueRangeError) as exc:
        log.info("command failed: %s", exc, exc_info=True)
        print(f"mirror: {exc}", file=sys.stderr)
        return getattr(exc, "exit_status", 1)
    except Exception as exc:
        log.exception("unexpected error")
        where = Home.resolve(args.home).log_path
        print(f"mirror: unexpected error ({type(exc).__name__}); details in {where}",
              file=sys.stderr)
        return 70
    sys.stdout.flush()
    return status
