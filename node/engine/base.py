"""The engine interface: what every engine (offline, local LLM, remote API) provides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crdt.journal import Reflection


@dataclass(frozen=True)
class MirrorbackRequest:
    """What an engine is given to reflect on: the new entry and some of the past."""

    reflection: Reflection
    past: Sequence[Reflection] = field(default_factory=tuple)


class Engine(Protocol):
    """One interface, several engines. ``stream`` yields the mirrorback in pieces."""

    name: str
    model: str

    def stream(self, request: MirrorbackRequest) -> AsyncIterator[str]: ...


async def complete(engine: Engine, request: MirrorbackRequest) -> str:
    """Collect a whole mirrorback from *engine*."""
    parts = [chunk async for chunk in engine.stream(request)]
    return "".join(parts).strip()
