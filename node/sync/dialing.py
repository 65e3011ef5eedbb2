"""Connecting to a device that may be reachable at several addresses.

Discovery reports every address a device advertised (LAN and VPN, Wi-Fi and
Ethernet, one gone stale), best first. :func:`connect_first` tries them in that
order in the manner of RFC 8305 ("happy eyeballs"): the next attempt starts as
soon as the previous one failed, or after NEXT_ADDRESS_DELAY_S if it has not
answered yet (a black-holed address must not cost a whole connect timeout), and
the first connection wins; the others are cancelled and closed. The caller
bounds the whole by its connect timeout and remembers the winner.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from .limits import MAX_DIAL_ADDRESSES, NEXT_ADDRESS_DELAY_S

log = logging.getLogger("mirror.sync")


Address = tuple[str, int]


async def _open(address: Address) -> trio.SocketStream:
    return await trio.open_tcp_stream(*address)


async def connect_first(addresses: Sequence[Address]) -> tuple[trio.SocketStream, int]:
    """A stream to the first of *addresses* (at most MAX_DIAL_ADDRESSES are
    tried) that accepts, and its index; OSError when every one failed. No
    deadline of its own: bound it with ``trio.fail_after``."""
    candidates = list(addresses)[:MAX_DIAL_ADDRESSES]
    if not candidates:
        raise OSError("no address to connect to")
    winner: tuple[trio.SocketStream, int] | None = None
    failures: list[str] = []

    async def attempt(index: int, address: Address, failed: trio.Event) -> None:
        nonlocal winner
        try:
            stream = await _open(address)
        except OSError as exc:
            log.debug("cannot reach %s:%d: %s", *address, exc)
            failures.append(f"{address[0]}:{address[1]}")
            failed.set()
            return
        if winner is None:
            winner = (stream, index)
            nursery.cancel_scope.cancel()  # the others, and the wait below
        else:  # connected in the same instant as the winner
            await trio.aclose_forcefully(stream)

    try:
        async with trio.open_nursery() as nursery:
            for index, address in enumerate(candidates):
                failed = trio.Event()
                nursery.start_soon(attempt, index, address, failed)
                with trio.move_on_after(NEXT_ADDRESS_DELAY_S):
                    await failed.wait()
    except BaseException:
        if winner is not None:  # the caller's deadline struck just as one connected
            winner[0].socket.close()
        raise
    if winner is None:
        raise OSError(f"could not connect to {', '.join(failures)}")
    return winner
