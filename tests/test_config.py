"""What the config calls loopback or LAN: the only places `local` mode may reach."""

from __future__ import annotations

import pytest

from node.config import is_loopback_or_lan


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:11434",
        "http://localhost:1234/v1",
        "http://[::1]:8080",
        "http://192.168.1.20:11434",
        "http://10.0.0.7",
        "http://172.20.0.1",
        "http://[fe80::1]",
        "http://[fd12:3456::1]",
        "http://[::ffff:192.168.1.1]",
        "http://printer.local",
    ],
)
def test_lan_and_loopback(url: str) -> None:
    assert is_loopback_or_lan(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com",
        "http://8.8.8.8",
        "http://203.0.113.5",  # documentation range: private to ipaddress, nobody's LAN
        "http://198.18.0.1",  # benchmarking range
        "http://100.64.0.1",  # carrier-grade NAT: the provider's network, not yours
        "http://172.32.0.1",
        "http://[2001:db8::1]",
        "http://[::ffff:8.8.8.8]",
        "not a url",
    ],
)
def test_not_lan(url: str) -> None:
    assert not is_loopback_or_lan(url)
