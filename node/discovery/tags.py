"""Discovery without I/O: its errors, limits and events, and how an advertised tag is recognised.

A group advertisement carries ``v`` and a ``tag`` that matches when it equals the
group's tag for the current hour, the one before or the one after (clock skew),
or an earlier epoch's tag for those hours; a pairing advertisement carries
``pairing``. :mod:`node.discovery` runs zeroconf around these and has the theory
of operation.

Errors::

    DiscoveryError          zeroconf could not start, register or browse (one line)
    └── PairingNotFound     no pairing advertisement with that tag in time
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ..errors import MirrorError

SERVICE_TYPE = "_mirror._tcp.local."
PROTOCOL_VERSION = 1
SECONDS_PER_HOUR = 3600
MAX_TAG_BYTES = 64  # hex in one TXT string: well under its 255-byte limit
MAX_TRACKED_SERVICES = 256  # instances of our type followed at once
MAX_QUEUED_EVENTS = 256  # per subscriber; more are dropped and counted
MAX_CONCURRENT_RESOLVES = 8
MAX_OWN_NAMES = 16  # our recent instance names, ignored when browsed
# Addresses kept per advertised device (LAN + VPN, Wi-Fi + Ethernet, a stale
# one...): a hostile advertisement listing hundreds must not make us dial hundreds.
MAX_PEER_ADDRESSES = 8
RESOLVE_TIMEOUT_S = 2.0
CLOSE_TIMEOUT_S = 5.0
REGISTER_RETRY_S = 60.0
# Wake this often to re-check the hour: the monotonic clock behind trio.sleep
# stops during suspend, and the wall clock may be corrected meanwhile.
ROTATION_CHECK_S = 300.0
# Short record TTLs, so a device that vanished without goodbye (crash, lost
# network) ages out of caches in minutes rather than zeroconf's 75 minutes.
RECORD_TTL_S = 120

TagForHour = Callable[[int], bytes]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# hour -> (epoch, tag) for the group's earlier epochs still worth recognising
EarlierTags = Callable[[int], Sequence[tuple[int, bytes]]]
Clock = Callable[[], float]


class DiscoveryError(MirrorError):
    """zeroconf failed; the message is one line for the person."""


class PairingNotFound(DiscoveryError):
    pass


@dataclass(frozen=True)
class PeerAddress:
    """Where a recognised device listens: every address it advertised that can
    be dialled, best first (see :func:`order_addresses`), at most
    MAX_PEER_ADDRESSES, all on ``port``. ``tag_hour`` is the hour whose tag
    matched (None for a pairing advertisement). ``epoch`` is set when the peer
    advertised the tag of an earlier group epoch (it missed a device removal):
    dial it at that epoch so it can learn the new one."""

    addresses: tuple[str, ...]
    port: int
    tag_hour: int | None
    epoch: int | None = None

    def __post_init__(self) -> None:
        if not 0 < len(self.addresses) <= MAX_PEER_ADDRESSES:
            raise ValueError(f"a peer has 1 to {MAX_PEER_ADDRESSES} addresses")

    @property
    def host(self) -> str:
        """The address to try first."""
        return self.addresses[0]

    def candidates(self) -> list[tuple[str, int]]:
        """``(host, port)`` for each address, in the order to dial them."""
        return [(address, self.port) for address in self.addresses]


@dataclass(frozen=True)
class PeerFound:
    peer: PeerAddress


@dataclass(frozen=True)
class PeerLost:
    peer: PeerAddress


PeerEvent = PeerFound | PeerLost


@dataclass(frozen=True)
class Advertisement:
    """The records this node currently publishes (for tests and diagnostics)."""

    instance_name: str
    server: str
    port: int
    properties: dict[str, str]
    tag_hour: int | None


@dataclass(frozen=True)
class DiscoveryStatistics:
    peers: int
    tracked_services: int
    advertised_tag_hour: int | None
    registrations: int
    registration_failures: int
    services_rejected: int
    resolve_failures: int
    events_dropped: int


# --- pure parts -------------------------------------------------------------


def hour_of(unix_time: float) -> int:
    return int(unix_time // SECONDS_PER_HOUR)


def seconds_until_next_hour(unix_time: float) -> float:
    return (hour_of(unix_time) + 1) * SECONDS_PER_HOUR - unix_time


def match_tag(advertised: bytes, now: float, tag_for_hour: TagForHour) -> int | None:
    """The hour (current, previous or next, for clock skew) whose tag equals
    ``advertised``, or None."""
    current = hour_of(now)
    for hour in (current, current - 1, current + 1):
        if hmac.compare_digest(advertised, tag_for_hour(hour)):
            return hour
    return None


def order_addresses(addresses: Iterable[str], networks: Iterable[Network]) -> tuple[str, ...]:
    """A peer's advertised addresses in the order to dial them, at most
    MAX_PEER_ADDRESSES: those on a subnet of one of our interfaces
    (``networks``) first, IPv4 before IPv6 within each group, advertised order
    otherwise. Duplicates go, and so do addresses nobody can dial: unparsable,
    unspecified, multicast, and IPv6 link-local (meaningless without the
    interface it was seen on, which the address alone does not say)."""
    ours = list(networks)
    seen: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    ranked: list[tuple[int, int, int, str]] = []
    for position, text in enumerate(addresses):
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if ip in seen or ip.is_unspecified or ip.is_multicast:
            continue
        if ip.version == 6 and ip.is_link_local:
            continue
        seen.add(ip)
        near = any(ip.version == net.version and ip in net for net in ours)
        ranked.append((0 if near else 1, 0 if ip.version == 4 else 1, position, str(ip)))
    ranked.sort()
    return tuple(text for *_, text in ranked[:MAX_PEER_ADDRESSES])


def _parse_hex(value: str | None) -> bytes | None:
    if value is None or len(value) > 2 * MAX_TAG_BYTES:
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def _check_tag(tag: bytes) -> None:
    if not 0 < len(tag) <= MAX_TAG_BYTES:
        raise DiscoveryError(f"a discovery tag must be 1 to {MAX_TAG_BYTES} bytes")


@dataclass(frozen=True)
class _Match:
    tag_hour: int | None  # None for a pairing advertisement
    epoch: int | None = None  # an earlier epoch whose tag matched


# Decides from a resolved instance's TXT whether it is ours (None: it is not).
Classifier = Callable[[dict[str, str | None]], _Match | None]


def _group_properties(tag: bytes) -> dict[str, str]:
    _check_tag(tag)
    return {"v": str(PROTOCOL_VERSION), "tag": tag.hex()}


def _pairing_properties(tag: bytes) -> dict[str, str]:
    _check_tag(tag)
    return {"v": str(PROTOCOL_VERSION), "pairing": tag.hex()}


def _group_classifier(
    tag_for_hour: TagForHour, clock: Clock, earlier_tags: EarlierTags | None = None
) -> Classifier:
    def classify(props: dict[str, str | None]) -> _Match | None:
        tag = _parse_hex(props.get("tag"))
        if tag is None or props.get("v") != str(PROTOCOL_VERSION):
            return None
        return match_any(tag, clock(), tag_for_hour, earlier_tags)

    return classify


def match_any(
    tag: bytes, now: float, tag_for_hour: TagForHour, earlier_tags: EarlierTags | None
) -> _Match | None:
    """Match against this epoch's tags, then (if given) against earlier epochs'."""
    hour = match_tag(tag, now, tag_for_hour)
    if hour is not None:
        return _Match(hour)
    if earlier_tags is None:
        return None
    current = hour_of(now)
    for candidate in (current, current - 1, current + 1):
        for epoch, earlier in earlier_tags(candidate):
            if hmac.compare_digest(tag, earlier):
                return _Match(candidate, epoch)
    return None


def _pairing_classifier(pairing_tag: bytes) -> Classifier:
    def classify(props: dict[str, str | None]) -> _Match | None:
        tag = _parse_hex(props.get("pairing"))
        if tag is None or not hmac.compare_digest(tag, pairing_tag):
            return None
        return _Match(None)

    return classify
