"""Third-party exceptions translated where they enter node sync, in one helper.

httpx, httpx-ws, wsproto and the socket layer each raise their own types; a
caller of :mod:`node.sync` sees ours (``StoreUnavailable``, ``RelayUnavailable``,
``trio.BrokenResourceError`` for a stream) and never theirs. Each boundary says
what it translates with :func:`map_exceptions` (httpcore's pattern) instead of a
hand-written ``except`` per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import httpx
import trio
import wsproto.utilities
from httpx_ws import HTTPXWSException

ExceptionTypes = type[BaseException] | tuple[type[BaseException], ...]
Translation = Mapping[ExceptionTypes, Callable[[BaseException], BaseException]]

NETWORK_ERRORS: tuple[type[BaseException], ...] = (HTTPXWSException, httpx.HTTPError, OSError)
"""What a relay or blind-store connection raises when the network or the peer fails."""

STREAM_ERRORS: tuple[type[BaseException], ...] = (
    *NETWORK_ERRORS, trio.BrokenResourceError, trio.ClosedResourceError,
    wsproto.utilities.LocalProtocolError,
)
"""What writing to a WebSocket that is going away raises."""


@contextmanager
def map_exceptions(translation: Translation) -> Iterator[None]:
    """Raise ``make(exc)`` (without the third-party chain) for an exception of the
    first key *exc* is an instance of; let anything else through unchanged."""
    try:
        yield
    except Exception as exc:
        for types, make in translation.items():
            if isinstance(exc, types):
                raise make(exc) from None
        raise
