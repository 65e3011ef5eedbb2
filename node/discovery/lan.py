"""LAN discovery of a person's other devices over zeroconf (mDNS/DNS-SD).

Theory of operation: each node advertises one ``_mirror._tcp.local.`` service
whose TXT record holds a *tag* that rotates every hour and is derived from the
group secret by the caller (``tag_for_hour``). Instance and server names are
random per registration, so nothing advertised is stable across hours and
nothing names the device or the person. A browser resolves every instance of
the type and reports only those whose tag equals ``tag_for_hour(h)`` for ``h``
within one hour of the local clock. At each hour boundary the node registers a
fresh instance with the new tag and withdraws the old one.

A device may advertise several addresses (LAN and VPN, Wi-Fi and Ethernet, one
gone stale). A peer is reported with all of them that can be dialled, at most
MAX_PEER_ADDRESSES, those on a subnet of one of our interfaces first
(``order_addresses``); the dialer tries them in that order and keeps to the one
that answered.

A pairing device advertises a separate instance whose TXT holds
``pairing=<hex tag>`` (derived from the pairing code by the caller);
:func:`find_pairing` looks for it.

zeroconf runs on its own threads: every call into it goes through
``trio.to_thread.run_sync`` and the browser's callbacks hop into trio through
the trio token. Liveness is not decided here (sessions use heartbeats);
removals are reported when they arrive.

The errors, limits, events and tag matching are in :mod:`node.discovery.tags`;
the zeroconf calls in :mod:`node.discovery.zeroconf_bridge`.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import trio
from zeroconf import DNSQuestionType, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf import Error as ZeroconfError

from .tags import (
    MAX_CONCURRENT_RESOLVES,
    MAX_OWN_NAMES,
    MAX_PEER_ADDRESSES,
    MAX_QUEUED_EVENTS,
    MAX_TRACKED_SERVICES,
    PROTOCOL_VERSION,
    REGISTER_RETRY_S,
    RESOLVE_TIMEOUT_S,
    ROTATION_CHECK_S,
    SERVICE_TYPE,
    Advertisement,
    Classifier,
    Clock,
    DiscoveryError,
    DiscoveryStatistics,
    EarlierTags,
    Network,
    PairingNotFound,
    PeerAddress,
    PeerEvent,
    PeerFound,
    PeerLost,
    TagForHour,
    _check_tag,
    _group_classifier,
    _group_properties,
    _pairing_classifier,
    _pairing_properties,
    _parse_hex,
    hour_of,
    match_any,
    match_tag,
    order_addresses,
    seconds_until_next_hour,
)
from .zeroconf_bridge import (
    _advertised_addresses,
    _advertisement_of,
    _close_bounded,
    _local_networks,
    _open_zeroconf,
    _peer_addresses,
    _register,
    _service_info,
    _unregister,
    _zeroconf_errors,
)

log = logging.getLogger("mirror.discovery")  # under "mirror": the home log, not stderr


def _unwrap_single(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    if len(group.exceptions) == 1 and not isinstance(group.exceptions[0], BaseExceptionGroup):
        return group.exceptions[0]
    return None


# --- the browser --------------------------------------------------------------


class Discovery:
    """Handle returned by :func:`open_discovery` (and used by :func:`find_pairing`)."""

    def __init__(self, zc: Zeroconf, classify: Classifier) -> None:
        self._zc = zc
        self._classify = classify
        self._earlier_tags: EarlierTags | None = None
        self._token = trio.lowlevel.current_trio_token()
        self._incoming_send, self._incoming = trio.open_memory_channel[tuple[str, bool]](
            MAX_TRACKED_SERVICES
        )
        self._resolve_limiter = trio.CapacityLimiter(MAX_CONCURRENT_RESOLVES)
        self._latest: dict[str, int] = {}  # instance name -> generation of last event
        self._generation = 0
        self._peers: dict[str, PeerAddress] = {}
        self._tags: dict[str, bytes] = {}  # instance name -> tag, for re-checks at rotation
        # Our own instances (current and recent), never reported as peers.
        self._own: deque[str] = deque(maxlen=MAX_OWN_NAMES)
        self._changed = trio.Event()
        self._subscribers: list[trio.MemorySendChannel[PeerEvent]] = []
        self._advertised: ServiceInfo | None = None
        self._advertised_hour: int | None = None
        self._registrations = 0
        self._registration_failures = 0
        self._rejected = 0
        self._resolve_failures = 0
        self._dropped = 0

    # -- public --

    def peers(self) -> list[PeerAddress]:
        """The matching devices currently known, in discovery order."""
        return list(self._peers.values())

    async def wait_peer(
        self, predicate: Callable[[PeerAddress], bool] | None = None
    ) -> PeerAddress:
        """Wait until a matching peer (satisfying ``predicate``) is known; bound
        it with ``trio.fail_after``."""
        while True:
            for peer in self._peers.values():
                if predicate is None or predicate(peer):
                    return peer
            await self._changed.wait()

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[trio.MemoryReceiveChannel[PeerEvent]]:
        """A channel of PeerFound/PeerLost events, starting with a PeerFound for
        every peer already known. A subscriber that falls more than
        MAX_QUEUED_EVENTS behind loses events (counted in statistics)."""
        send, receive = trio.open_memory_channel[PeerEvent](MAX_QUEUED_EVENTS)
        for peer in self._peers.values():
            send.send_nowait(PeerFound(peer))
        self._subscribers.append(send)
        try:
            with receive:
                yield receive
        finally:
            self._subscribers.remove(send)
            send.close()

    def advertisement(self) -> Advertisement | None:
        if self._advertised is None:
            return None
        return _advertisement_of(self._advertised, self._advertised_hour)

    def statistics(self) -> DiscoveryStatistics:
        return DiscoveryStatistics(
            peers=len(self._peers),
            tracked_services=len(self._latest),
            advertised_tag_hour=self._advertised_hour,
            registrations=self._registrations,
            registration_failures=self._registration_failures,
            services_rejected=self._rejected,
            resolve_failures=self._resolve_failures,
            events_dropped=self._dropped,
        )

    # -- zeroconf side (browser thread) --

    def _on_state_change_threadsafe(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        removed = state_change is ServiceStateChange.Removed
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._on_state_change, name, removed)

    # -- trio side --

    def _on_state_change(self, name: str, removed: bool) -> None:
        try:
            self._incoming_send.send_nowait((name, removed))
        except trio.WouldBlock:
            self._dropped += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # shutting down: the browser may still report until it is cancelled

    async def _run_browser_events(self) -> None:
        async with trio.open_nursery() as nursery, self._incoming:
            async for name, removed in self._incoming:
                if name in self._own:
                    continue
                self._generation += 1
                if removed:
                    self._latest.pop(name, None)
                    self._forget(name)
                    continue
                if name not in self._latest and len(self._latest) >= MAX_TRACKED_SERVICES:
                    self._dropped += 1
                    continue
                self._latest[name] = self._generation
                nursery.start_soon(self._resolve, name, self._generation)

    async def _resolve(self, name: str, generation: int) -> None:
        def request() -> tuple[ServiceInfo, list[Network]] | None:
            info = ServiceInfo(SERVICE_TYPE, name)
            ok = info.request(self._zc, RESOLVE_TIMEOUT_S * 1000, question_type=DNSQuestionType.QM)
            # Our subnets now (they change as the machine moves), to rank its addresses.
            return (info, _local_networks()) if ok else None

        async with self._resolve_limiter:
            try:
                resolved = await trio.to_thread.run_sync(request, abandon_on_cancel=True)
            except (ZeroconfError, OSError, AssertionError):
                resolved = None
        if self._latest.get(name) != generation:
            return  # superseded by a later event for this name
        if resolved is None:
            self._resolve_failures += 1
            return
        self._consider(name, *resolved)

    def _consider(self, name: str, info: ServiceInfo, networks: Sequence[Network]) -> None:
        match = self._classify(info.decoded_properties)
        addresses = _peer_addresses(info, networks)
        if match is None or not addresses or not info.port:
            self._rejected += 1
            self._forget(name)
            return
        peer = PeerAddress(addresses, info.port, match.tag_hour, match.epoch)
        tag = _parse_hex(info.decoded_properties.get("tag"))
        if tag is not None:
            self._tags[name] = tag
        if self._peers.get(name) == peer:
            return
        if name in self._peers:
            self._emit(PeerLost(self._peers.pop(name)))
        self._peers[name] = peer
        self._emit(PeerFound(peer))

    def _forget(self, name: str) -> None:
        self._tags.pop(name, None)
        peer = self._peers.pop(name, None)
        if peer is not None:
            self._emit(PeerLost(peer))

    def _emit(self, event: PeerEvent) -> None:
        for send in self._subscribers:
            try:
                send.send_nowait(event)
            except (trio.WouldBlock, trio.BrokenResourceError):
                self._dropped += 1
        self._changed.set()
        self._changed = trio.Event()

    def _recheck(self, now: float, tag_for_hour: TagForHour) -> None:
        """At rotation: drop peers whose tag fell out of the ±1 hour window."""
        for name, tag in list(self._tags.items()):
            if match_any(tag, now, tag_for_hour, self._earlier_tags) is None:
                self._forget(name)

    # -- advertising --

    async def _advertise(self, info: ServiceInfo, tag_hour: int | None) -> None:
        """Publish ``info``, then withdraw the previous advertisement."""
        self._own.append(info.name)
        try:
            await _register(self._zc, info)
        except DiscoveryError:
            self._registration_failures += 1
            raise
        previous, self._advertised, self._advertised_hour = self._advertised, info, tag_hour
        self._registrations += 1
        if previous is not None:
            try:
                await _unregister(self._zc, previous)
            except DiscoveryError:
                log.warning("discovery: withdrawing the previous tag failed", exc_info=True)

    async def _rotate_forever(
        self, port: int, addresses: Sequence[str], tag_for_hour: TagForHour, clock: Clock
    ) -> None:
        while True:
            until_boundary = seconds_until_next_hour(clock())
            await trio.sleep(max(min(until_boundary, ROTATION_CHECK_S), 0.001))
            now = clock()
            hour = hour_of(now)
            if hour == self._advertised_hour:
                continue  # a periodic check, or woke a little early
            self._recheck(now, tag_for_hour)
            info = _service_info(_group_properties(tag_for_hour(hour)), port, addresses)
            try:
                await self._advertise(info, hour)
            except DiscoveryError as exc:
                log.warning("discovery: re-advertising failed: %s", exc)
                await trio.sleep(min(REGISTER_RETRY_S, seconds_until_next_hour(clock())))

    def _current_infos(self) -> list[ServiceInfo]:
        return [self._advertised] if self._advertised is not None else []


@contextlib.asynccontextmanager
async def _running(
    interfaces: Sequence[str] | None, classify: Classifier, browse: bool
) -> AsyncIterator[tuple[Discovery, trio.Nursery]]:
    """Zeroconf + (optionally) a browser; everything torn down on exit, also on
    cancellation, within CLOSE_TIMEOUT_S."""
    zc = await _open_zeroconf(interfaces)
    disc: Discovery | None = None
    browser: ServiceBrowser | None = None
    try:
        disc = Discovery(zc, classify)
        try:
            async with trio.open_nursery() as nursery:
                if browse:
                    nursery.start_soon(disc._run_browser_events)
                    with _zeroconf_errors("browse"):
                        browser = await trio.to_thread.run_sync(
                            lambda: ServiceBrowser(
                                zc,
                                SERVICE_TYPE,
                                handlers=[disc._on_state_change_threadsafe],
                                question_type=DNSQuestionType.QM,
                            )
                        )
                yield disc, nursery
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # Callers see their own exception (or ours), not a group of one.
            single = _unwrap_single(group)
            if single is None:
                raise
            raise single from None
    finally:
        await _close_bounded(zc, browser, disc._current_infos() if disc else [])


@contextlib.asynccontextmanager
async def open_discovery(
    *,
    interfaces: Sequence[str] | None,
    port: int,
    tag_for_hour: TagForHour,
    clock: Clock,
    addresses: Sequence[str] | None = None,
    earlier_tags: EarlierTags | None = None,
) -> AsyncIterator[Discovery]:
    """Advertise this node's rotating tag and browse for the same person's devices.

    ``earlier_tags(hour)`` lists ``(epoch, tag)`` of earlier group epochs: a
    device that missed a removal still advertises those; it is reported with
    its ``epoch`` so the node can meet it there (nothing is advertised for them).

    ``interfaces``: IP addresses to bind mDNS to (tests: ``["127.0.0.1"]``), or
    None for all LAN interfaces. ``port``: the sync listener's port.
    ``tag_for_hour(hour)`` with ``hour = int(unix_time // 3600)`` gives the
    group's tag; ``clock()`` gives unix time. ``addresses`` to advertise default
    to ``interfaces`` (or the LAN addresses).
    """
    advertised = _advertised_addresses(interfaces, addresses)
    classify = _group_classifier(tag_for_hour, clock, earlier_tags)
    async with _running(interfaces, classify, True) as (disc, nursery):
        disc._earlier_tags = earlier_tags
        hour = hour_of(clock())
        info = _service_info(_group_properties(tag_for_hour(hour)), port, advertised)
        await disc._advertise(info, hour)
        nursery.start_soon(disc._rotate_forever, port, advertised, tag_for_hour, clock)
        yield disc


@contextlib.asynccontextmanager
async def advertise_pairing(
    *,
    interfaces: Sequence[str] | None,
    port: int,
    pairing_tag: bytes,
    addresses: Sequence[str] | None = None,
) -> AsyncIterator[Advertisement]:
    """Advertise a pairing listener on ``port`` until the block ends."""
    advertised = _advertised_addresses(interfaces, addresses)
    info = _service_info(_pairing_properties(pairing_tag), port, advertised)
    async with _running(interfaces, _pairing_classifier(pairing_tag), False) as (disc, _):
        await disc._advertise(info, None)
        yield _advertisement_of(info, None)


async def find_pairing(
    interfaces: Sequence[str] | None, pairing_tag: bytes, *, timeout_s: float
) -> PeerAddress:
    """The address of a device advertising ``pairing_tag``; PairingNotFound
    when none answers within ``timeout_s``."""
    _check_tag(pairing_tag)
    async with _running(interfaces, _pairing_classifier(pairing_tag), True) as (disc, _):
        with trio.move_on_after(timeout_s):
            return await disc.wait_peer()
    raise PairingNotFound(f"no pairing device answered within {timeout_s:g} s")


__all__ = [
    "MAX_PEER_ADDRESSES",
    "PROTOCOL_VERSION",
    "SERVICE_TYPE",
    "Advertisement",
    "Discovery",
    "DiscoveryError",
    "DiscoveryStatistics",
    "PairingNotFound",
    "PeerAddress",
    "PeerEvent",
    "PeerFound",
    "PeerLost",
    "advertise_pairing",
    "find_pairing",
    "hour_of",
    "match_tag",
    "open_discovery",
    "order_addresses",
    "seconds_until_next_hour",
]
