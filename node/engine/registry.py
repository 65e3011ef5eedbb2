"""Choosing the engine that the config asks for."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Engine

if TYPE_CHECKING:
    from ..config import Config
    from ..home import Home


def engine_for(config: Config, home: Home) -> Engine:
    """The engine for *config*. Only ``offline`` exists so far; the LLM engines
    fall back to it until they are configured (issue: the reflection engine)."""
    from .offline import OfflineEngine

    return OfflineEngine()
