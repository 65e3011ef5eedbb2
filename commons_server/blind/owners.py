"""Whom the blind store charges a log to: the address that created it, kept as a
24-bit keyed hash.

Tokens are anonymous, so the only thing that tells one requester from another is
the network address: an IPv4 address, or an IPv6 /64 (one customer's link is
usually a whole /64). The store keeps no addresses: a log records
``BLAKE2b(key=the store's secret salt, address)`` cut to ``OWNER_BYTES`` bytes.
About 256 IPv4 addresses share each value (and far more IPv6 /64s), so the
database holds no address. Two requesters sharing a value share its quota: with
100,000 active addresses, 0.6 % share theirs with someone, and an attacker
that exhausts the quotas of a few dozen addresses takes one legitimate address
in about 350,000 with them (fewer bits would make that 1 in 1,400: 16 bits).
(relay/admission.py groups addresses the same way; the relay may import
nothing of this package, hence the two copies of that small rule.)
"""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Final

OWNER_BYTES: Final = 3
IPV6_PREFIX_BITS: Final = 64
SALT_BYTES: Final = 32


def address_key(host: str) -> str:
    """An IPv4 address as itself, an IPv6 address as its /64."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        shift = 128 - IPV6_PREFIX_BITS
        return str(ipaddress.IPv6Network((int(ip) >> shift << shift, IPV6_PREFIX_BITS)))
    return str(ip)


def owner_of(salt: bytes, host: str) -> bytes:
    """The owner value a log created from *host* is charged to."""
    return hashlib.blake2b(address_key(host).encode(), key=salt,
                           digest_size=OWNER_BYTES, person=b"mirror/owner").digest()
