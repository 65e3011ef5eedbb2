"""Per-address limits behind a trusted proxy count clients, not the proxy (issue 19).

``--trusted-proxy`` makes the server take the client's address from the last
``X-Forwarded-For`` line HAProxy appended (``option forwardfor``), and only on
connections from that proxy: a client cannot name itself someone else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from commons_server.app import CommonsApp
from commons_server.blind import build_blind_store_app, with_blind_store
from commons_server.forwarded import forwarded_client, parse_trusted, with_forwarded_client
from commons_server.limits import CommonsLimits
from commons_server.server import open_hub

PROXY = "10.0.0.10"


def scope(peer: str, *forwarded: bytes) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/healthz", "root_path": "",
            "query_string": b"", "client": (peer, 40000),
            "headers": [(b"X-Forwarded-For", value) for value in forwarded]}


def test_only_the_trusted_proxys_last_line_is_believed() -> None:
    trusted = frozenset(parse_trusted(PROXY))
    assert forwarded_client(scope(PROXY, b"198.51.100.1"), trusted) == "198.51.100.1"
    # what the client wrote comes first; the proxy appends its own line last
    assert forwarded_client(scope(PROXY, b"203.0.113.66", b"198.51.100.1"),
                            trusted) == "198.51.100.1"
    assert forwarded_client(scope(PROXY, b"203.0.113.66, 198.51.100.2"),
                            trusted) == "198.51.100.2"
    assert forwarded_client(scope("192.0.2.50", b"198.51.100.1"), trusted) is None
    assert forwarded_client(scope(PROXY, b"not-an-address"), trusted) is None
    assert forwarded_client(scope(PROXY), trusted) is None


async def call(app: Any, request: dict[str, Any]) -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(request, receive, send)
    return int(sent[0]["status"])


async def test_request_limits_count_each_forwarded_client(tmp_path: Path) -> None:
    limits = CommonsLimits(address_requests_per_minute=2)
    async with open_hub(tmp_path / "server", limits=limits, clock=lambda: 100.0) as hub:
        blind = build_blind_store_app(tmp_path / "server")
        try:
            app = with_forwarded_client(with_blind_store(CommonsApp(hub), blind), [PROXY])
            first = [await call(app, scope(PROXY, b"198.51.100.1")) for _ in range(3)]
            assert first == [200, 200, 429]
            assert await call(app, scope(PROXY, b"198.51.100.2")) == 200  # another client
            # Without the trusted proxy, all of them would be one address.
            plain = with_blind_store(CommonsApp(hub), blind)
            statuses = [await call(plain, scope(PROXY, f"198.51.100.{i}".encode()))
                        for i in range(10, 13)]
            assert statuses == [200, 200, 429]
        finally:
            blind.close()
