"""The client's address behind a proxy the operator trusts (``--trusted-proxy``).

Behind HAProxy every connection comes from the proxy's address, so every limit
and quota kept per address (update and request rates, sessions, the blind
store's bytes and logs) would hold for all clients together. With
``option forwardfor`` HAProxy appends an ``X-Forwarded-For`` header line naming
the address it took the connection from. :func:`with_forwarded_client` puts that
address into the ASGI scope's ``client`` — only for connections whose peer is
one of the trusted proxies (anyone else could write the header), and only from
the last header line (the one the proxy appended; earlier lines and entries came
from the client). A value that is not an IP address is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

HEADER = b"x-forwarded-for"


def forwarded_client(scope: Scope, trusted: frozenset[str]) -> str | None:
    """The address the trusted proxy named for this connection, or None."""
    client = scope.get("client")
    if not client or str(client[0]) not in trusted:
        return None
    lines = [bytes(v) for k, v in scope.get("headers", []) if bytes(k).lower() == HEADER]
    if not lines:
        return None
    last = lines[-1].decode("latin-1").split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None


def with_forwarded_client(app: ASGIApp, trusted_proxies: Iterable[str]) -> ASGIApp:
    """*app*, seeing the address a trusted proxy forwarded as the client's."""
    trusted = frozenset(str(ipaddress.ip_address(a.strip())) for a in trusted_proxies)

    async def dispatch(scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            address = forwarded_client(scope, trusted)
            if address is not None:
                scope = {**scope, "client": (address, 0)}
        await app(scope, receive, send)

    return dispatch


def parse_trusted(value: str | None) -> tuple[str, ...]:
    """``--trusted-proxy 10.0.0.10,10.0.0.20`` -> the addresses; ValueError names a bad one."""
    if not value:
        return ()
    out = []
    for part in value.split(","):
        try:
            out.append(str(ipaddress.ip_address(part.strip())))
        except ValueError:
            raise ValueError(f"--trusted-proxy: not an IP address: {part.strip()!r}") from None
    return tuple(out)
