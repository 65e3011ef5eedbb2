"""What the relay checks of a request before serving it: whom it is counted against,
the size of its head, and its HTTP version.

- **Addresses.** Per-address limits count an IPv4 address, and an IPv6 client by its
  /64 (``IPV6_PREFIX_BITS``): one customer's link usually gets a whole /64, so a
  limit per full IPv6 address would let one host take 2^64 addresses' worth of
  connections. An IPv4-mapped IPv6 address counts as the IPv4 address.
- **Heads.** hypercorn's h11 refuses a request head still incomplete at
  ``MAX_HTTP_HEADER_BYTES``, but a complete head that arrives in one read (up to
  64 KiB) passes; the relay refuses those with 431 too.
- **HTTP/2.** hypercorn has no switch for h2c (``Upgrade: h2c``) or prior-knowledge
  HTTP/2 on a plain socket, and upgrades to either on request. The relay's clients
  speak HTTP/1.1 WebSockets, and so does a reverse proxy in front of it, so every
  request over HTTP/2 is refused (505) and a WebSocket over HTTP/2 (RFC 8441) is
  not accepted: one TCP connection carries one WebSocket, which the per-address
  limits, the byte budget and the resets of ``relay.app`` assume.
"""

from __future__ import annotations

import ipaddress
from collections.abc import MutableMapping
from typing import Any

from .limits import IPV6_PREFIX_BITS, MAX_HTTP_HEADER_BYTES

Scope = MutableMapping[str, Any]

SERVED_HTTP_VERSIONS = frozenset({"1.0", "1.1"})
REQUEST_LINE_OVERHEAD = len("GET  HTTP/1.1\r\n")
HEADER_LINE_OVERHEAD = len(": \r\n")


def address_key(host: str) -> str:
    """What per-address limits count *host* as: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # not an IP address (a Unix socket's name, or unknown)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        network = ipaddress.IPv6Network((int(ip) >> (128 - IPV6_PREFIX_BITS)
                                         << (128 - IPV6_PREFIX_BITS), IPV6_PREFIX_BITS))
        return str(network)
    return str(ip)


def head_bytes(scope: Scope) -> int:
    """The size of the request head as it came on the wire (near enough)."""
    size = REQUEST_LINE_OVERHEAD + len(scope.get("raw_path") or b"")
    query = scope.get("query_string") or b""
    if query:
        size += 1 + len(query)
    for name, value in scope.get("headers") or ():
        size += len(name) + len(value) + HEADER_LINE_OVERHEAD
    return size


def refusal(scope: Scope) -> tuple[int, bytes] | None:
    """``(status, body)`` for a request the relay does not serve at all, else None."""
    if str(scope.get("http_version", "1.1")) not in SERVED_HTTP_VERSIONS:
        return 505, b"the relay speaks HTTP/1.1 only\n"
    if head_bytes(scope) > MAX_HTTP_HEADER_BYTES:
        return 431, b"request head too large\n"
    return None
