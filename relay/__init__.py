"""Mirror's stateless relay: forwards ciphertext between the connections of a room.

- :class:`RelayApp` — the ASGI application (rooms, limits, ``/healthz``, ``/metrics``).
- :func:`serve_relay` — serve it with hypercorn's trio worker.
- :mod:`relay.limits` — every limit, with units, and the close codes.

The relay imports :mod:`protocol` at most, never documents or keys; what it can
see is described in ``docs/relay.md``.
"""

from __future__ import annotations

from .app import RelayApp, RelayStatistics
from .limits import RelayCloseCode, RelayLimits
from .server import serve_relay

__all__ = ["RelayApp", "RelayCloseCode", "RelayLimits", "RelayStatistics", "serve_relay"]
