"""``mirror repl`` (and ``mirror`` with no command): the interactive prompt."""

from __future__ import annotations

import argparse
from typing import TextIO

from ..app import Mirror
from ..repl import run_repl
from ..terminal import direct_stdio
from .options import AddCommand


async def cmd_repl(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    with direct_stdio():  # prompt-toolkit draws; the REPL filters what it shows itself
        await run_repl(mirror)
    return 0


def add_commands(add: AddCommand) -> None:
    add("repl", cmd_repl, "start the interactive prompt (the default)")
