"""Mounting the blind store inside another ASGI application (the Commons server).

``with_blind_store(commons_app, blind_app)`` answers every request under
``/store`` with the blind store (its routes become ``/store/v1/log`` …) and
everything else with *app*; lifespan events go to *app* only.
"""

from __future__ import annotations

from typing import Any

from .app import ASGIApp, BlindStoreApp, Receive, Scope, Send

BLIND_STORE_PREFIX = "/store"


def with_blind_store(app: Any, blind: BlindStoreApp, prefix: str = BLIND_STORE_PREFIX) -> ASGIApp:
    """*app* with the blind store mounted at *prefix*."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope.get("type") in ("http", "websocket") and (
            path == prefix or path.startswith(prefix + "/")
        ):
            root = str(scope.get("root_path", ""))
            await blind({**scope, "root_path": root + prefix}, receive, send)
        else:
            await app(scope, receive, send)

    return dispatch
