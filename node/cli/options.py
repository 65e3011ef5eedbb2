"""What every command module shares to declare its arguments: the parser that fails in
one line, argument types, and the shapes of handlers. Imports nothing heavy: every
command, and ``mirror --help``, loads it."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:
    from ..app import Mirror
    from ..home import Home

Handler = Callable[["Mirror", argparse.Namespace, TextIO], Awaitable[int]]
"""A command on an open home: the application layer, the arguments, standard output."""
HomeHandler = Callable[["Home", argparse.Namespace, TextIO], Awaitable[int]]
"""A command on the home's files, which must not be open (backup, restore, encrypt)."""
AddCommand = Callable[[str, Any, str], argparse.ArgumentParser]
"""``add(name, handler, help)``: the parser of command *name*, its handler set."""


class OneLineParser(argparse.ArgumentParser):
    """Wrong arguments are one line on stderr (exit status 2), like every failure."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (for --limit N and the like)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more (got {value})")
    return value
