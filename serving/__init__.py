"""Serving ASGI applications on hypercorn's trio worker: the plumbing the relay, the
Commons server and the blind store share, and nothing of Mirror's.

A bottom layer: it imports none of our packages, and ``relay`` and
``commons_server`` import it (tests/test_import_rules.py checks both).

- :mod:`serving.rate` — a sans-IO token bucket (time is passed in), and one bucket
  per key with a clock;
- :mod:`serving.http` — :class:`HttpError`, answering a request, the lifespan
  protocol;
- :mod:`serving.config` — one hypercorn ``Config`` builder, serving an app until a
  shutdown event, and limits dataclasses read from flags and the environment;
- :mod:`serving.hypercorn_trim` — the per-connection trim of hypercorn 0.18's
  upgraded WebSockets (the relay applies it).

Errors::

    Exception
    └── HttpError          an HTTP answer other than success: status, message, headers
"""

from __future__ import annotations

from .http import HttpError, lifespan, reject_upgrade, respond
from .rate import Rate, TokenBucket, TokenBuckets

__all__ = [
    "HttpError",
    "Rate",
    "TokenBucket",
    "TokenBuckets",
    "lifespan",
    "reject_upgrade",
    "respond",
]
