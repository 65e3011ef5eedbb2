"""``mirror``: the entry point. Builds the parser from the command table
(:mod:`node.cli.table`), importing the module of the one command that runs, then
hands the parsed arguments to :func:`node.cli.run.execute`.

Start-up is part of the design: ``mirror --help`` and a wrong argument load no
more than this module, the table and argparse; a command loads its own module
and what it needs, nothing of the other commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from ..terminal import safe_stdio
from .options import OneLineParser
from .table import BY_NAME, COMMANDS, DEFAULT, Command

DISTRIBUTION = "mirror-reflect"  # the name Mirror is installed under (pyproject.toml)
DESCRIPTION = ("Mirror: write reflections; your own machine reflects them back. "
               "With no command, starts the interactive prompt.")


class _Version(argparse.Action):
    """``--version``, reading the installed version only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        sys.stdout.write(f"mirror {mirror_version()}\n")
        parser.exit(0)


def mirror_version() -> str:
    """The installed version of Mirror ("unknown" when run from an uninstalled tree)."""
    import importlib.metadata  # reason: start-up; it costs more than --help itself

    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _top_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", help="the node's home directory (default: $MIRROR_HOME "
                        "or your user data directory)")
    parser.add_argument("--verbose", action="store_true", help="more detail in the log file")
    parser.add_argument("--passphrase-file", metavar="FILE",
                        help="passphrase of an encrypted home or backup (first line of FILE; "
                        "or set MIRROR_PASSPHRASE)")


class _Unparsed(Exception):
    pass


class _SilentParser(argparse.ArgumentParser):
    """A first look at the arguments that says nothing: the real parser reports."""

    def error(self, message: str) -> NoReturn:
        raise _Unparsed(message)


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command *argv* names (None: none, or not one of ours; the parser says why)."""
    pre = _SilentParser(add_help=False)
    _top_options(pre)
    pre.add_argument("--version", action="store_true")
    pre.add_argument("-h", "--help", action="store_true")
    pre.add_argument("command", nargs="?")
    pre.add_argument("rest", nargs=argparse.REMAINDER)
    try:
        known, _ = pre.parse_known_args(argv)
    except _Unparsed:  # a top-level option without its value: the real parser says so
        return None
    command: str | None = known.command
    return command if command in BY_NAME else None


def configure(command: Command, parser: argparse.ArgumentParser) -> None:
    """Let *command*'s module declare its arguments on *parser* (and its handler)."""
    module = importlib.import_module(command.module)

    def add(name: str, handler: Any, help_text: str) -> argparse.ArgumentParser:
        if name != command.name:
            return argparse.ArgumentParser(add_help=False)  # another command of the module
        parser.set_defaults(handler=handler)
        return parser

    module.add_commands(add)


def build_parser(chosen: str | None = None, *, every: bool = False) -> argparse.ArgumentParser:
    """The ``mirror`` parser: every command listed; the arguments of *chosen* only (of
    every command with *every*, which imports every command module)."""
    parser = OneLineParser(prog="mirror", description=DESCRIPTION)
    _top_options(parser)
    parser.add_argument("--version", action=_Version)
    parser.set_defaults(command=BY_NAME[DEFAULT], handler=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        p.set_defaults(command=command, handler=None)
        if every or command.name == chosen:
            configure(command, p)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    chosen = chosen_command(argv)
    args = build_parser(chosen).parse_args(argv)
    if args.handler is None:  # no command given: the default one, with its defaults
        args = build_parser(DEFAULT).parse_args([*argv, DEFAULT])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    # Every line the program prints goes through one filter: text from elsewhere
    # (synced or imported reflections, Commons posts, device names, server
    # messages) never drives the terminal (node.terminal).
    with safe_stdio():
        args = parse(sys.argv[1:] if argv is None else list(argv))
        from .run import execute  # reason: start-up; parsing (and --help) loads no trio or store

        return execute(args)
