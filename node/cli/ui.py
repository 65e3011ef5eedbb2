"""``mirror ui``: the local web interface (node/ui), contributed to the ``mirror`` parser.

Only the parser lives here, so other commands do not pay for importing the server.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from ..app import Mirror
from .options import AddCommand


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (got {value})")
    return value


async def cmd_ui(mirror: Mirror, args: argparse.Namespace, out: TextIO) -> int:
    from ..ui.run import cmd_ui as run  # reason: start-up; only `mirror ui` loads the server

    return await run(mirror, args, out)


def add_commands(add: AddCommand) -> None:
    p = add("ui", cmd_ui, "open the local web interface in your browser (served on "
            "127.0.0.1 only; the printed link works once)")
    p.add_argument("--port", type=port_number, default=0,
                   help="the port to serve on (default: a free one)")
    p.add_argument("--no-browser", dest="browser", action="store_false",
                   help="print the link without opening a browser")
