"""The blind store: a peer that keeps a person's encrypted device updates and
snapshots so that devices never online together still sync, and a new device
can restore — while it can neither read nor merge anything it keeps.

- :func:`build_blind_store_app` — the ASGI application (mount it anywhere).
- :func:`serve_blind_store` — serve it with hypercorn's trio worker.
- :func:`run_store_only` — what ``mirror-commons --store-only`` runs.
- :func:`with_blind_store` — mount it under ``/store`` in another ASGI app.

``spec/protocol.md`` §12 describes the HTTP interface and the envelopes;
``spec/threat-model.md`` what the store sees and what it cannot.
"""

from __future__ import annotations

from .app import BlindStoreApp, BlindStoreStatistics, build_blind_store_app
from .limits import StoreLimits
from .mount import BLIND_STORE_PREFIX, with_blind_store
from .server import add_arguments, run_store_only, serve_blind_store

__all__ = [
    "BLIND_STORE_PREFIX",
    "BlindStoreApp",
    "BlindStoreStatistics",
    "StoreLimits",
    "add_arguments",
    "build_blind_store_app",
    "run_store_only",
    "serve_blind_store",
    "with_blind_store",
]
