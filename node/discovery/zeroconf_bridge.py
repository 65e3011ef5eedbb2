"""The zeroconf boundary of discovery: open, register, withdraw, resolve and close.

zeroconf blocks and runs its own threads, so every call goes through
``trio.to_thread.run_sync``; its errors become one-line
:class:`~node.discovery.tags.DiscoveryError`. Closing is bounded by
``CLOSE_TIMEOUT_S`` and attempts every step.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
from collections.abc import Iterator, Sequence

import ifaddr
import trio
from zeroconf import Error as ZeroconfError
from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceInfo, Zeroconf

from .tags import (
    CLOSE_TIMEOUT_S,
    RECORD_TTL_S,
    SERVICE_TYPE,
    Advertisement,
    DiscoveryError,
    Network,
    order_addresses,
)

log = logging.getLogger("mirror.discovery")


def _random_label() -> str:
    # Fresh per registration: a name must not link two hours of one device.
    return secrets.token_hex(8)


@contextlib.contextmanager
def _zeroconf_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (ZeroconfError, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DiscoveryError(f"discovery could not {action}: {detail}") from exc


def _lan_addresses() -> list[str]:
    found = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ipaddress.ip_address(ip.ip).is_loopback:
                found.append(ip.ip)
    return sorted(set(found))


def _local_networks() -> list[Network]:
    """The subnets of this machine's interfaces (in the current network
    namespace), to dial a peer's addresses on them first."""

    found: list[Network] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            with contextlib.suppress(ValueError):
                found.append(ipaddress.ip_interface(f"{address}/{ip.network_prefix}").network)
    return found


def _ip_addresses(values: Sequence[str]) -> list[str]:
    try:
        return [str(ipaddress.ip_address(v)) for v in values]
    except ValueError as exc:
        raise DiscoveryError(f"discovery needs IP addresses: {exc}") from None


def _advertised_addresses(
    interfaces: Sequence[str] | None, addresses: Sequence[str] | None
) -> list[str]:
    if addresses is not None:
        return _ip_addresses(addresses)
    if interfaces is None:
        return _lan_addresses()
    return _ip_addresses(interfaces)


async def _open_zeroconf(interfaces: Sequence[str] | None) -> Zeroconf:
    choice = InterfaceChoice.All if interfaces is None else list(interfaces)
    version = IPVersion.V4Only if interfaces is None else None
    with _zeroconf_errors("start"):
        zc: Zeroconf = await trio.to_thread.run_sync(
            lambda: Zeroconf(interfaces=choice, ip_version=version)
        )
    return zc


def _close_zeroconf(
    zc: Zeroconf, browser: ServiceBrowser | None, infos: Sequence[ServiceInfo]
) -> None:
    # Runs on a worker thread; every step is attempted so one failure does not
    # leave sockets open.
    if browser is not None:
        with contextlib.suppress(Exception):
            browser.cancel()
    for info in infos:
        with contextlib.suppress(Exception):
            zc.unregister_service(info)
    zc.close()


async def _close_bounded(
    zc: Zeroconf, browser: ServiceBrowser | None, infos: Sequence[ServiceInfo]
) -> None:
    with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True) as scope:
        try:
            await trio.to_thread.run_sync(
                _close_zeroconf, zc, browser, list(infos), abandon_on_cancel=True
            )
        except Exception:
            log.warning("discovery: closing zeroconf failed", exc_info=True)
    if scope.cancelled_caught:
        log.warning("discovery: closing zeroconf took over %s s; abandoned", CLOSE_TIMEOUT_S)


def _service_info(properties: dict[str, str], port: int, addresses: Sequence[str]) -> ServiceInfo:
    label = _random_label()
    return ServiceInfo(
        SERVICE_TYPE,
        f"{label}.{SERVICE_TYPE}",
        port=port,
        properties=properties,
        server=f"{label}.local.",
        parsed_addresses=list(addresses),
        host_ttl=RECORD_TTL_S,
        other_ttl=RECORD_TTL_S,
    )


def _advertisement_of(info: ServiceInfo, tag_hour: int | None) -> Advertisement:
    props = {k: v or "" for k, v in info.decoded_properties.items()}
    return Advertisement(info.name, info.server or "", info.port or 0, props, tag_hour)


async def _register(zc: Zeroconf, info: ServiceInfo) -> None:
    with _zeroconf_errors("advertise"):
        # Names are random, so probing for conflicts only costs time.
        await trio.to_thread.run_sync(
            lambda: zc.register_service(info, cooperating_responders=True)
        )


async def _unregister(zc: Zeroconf, info: ServiceInfo) -> None:
    with _zeroconf_errors("withdraw an advertisement"):
        await trio.to_thread.run_sync(zc.unregister_service, info)


def _peer_addresses(info: ServiceInfo, networks: Sequence[Network]) -> tuple[str, ...]:
    """Every address a resolved instance advertised (IPv4 and IPv6), in the
    order to dial them and capped (:func:`~node.discovery.tags.order_addresses`)."""
    return order_addresses(info.parsed_addresses(IPVersion.All), networks)
