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


@dataclass(frozen=True)
class EngineNotice:
    """A word to the person about how this mirrorback came to be ("the model did not
    answer — …; here is the offline mirrorback"). Shown once when it happens and
    logged; never part of the mirrorback, so never saved, synced or exported."""

    text: str


class Engine(Protocol):
    """One interface, several engines. ``stream`` yields the mirrorback in pieces
    (``str``), and any :class:`EngineNotice` at the point where it applies."""

    name: str
    model: str

    def stream(self, request: MirrorbackRequest) -> AsyncIterator[str | EngineNotice]: ...


async def complete_with_notices(
    engine: Engine, request: MirrorbackRequest
) -> tuple[str, list[EngineNotice]]:
    """A whole mirrorback from *engine*, and the notices that came with it."""
    parts: list[str] = []
    notices: list[EngineNotice] = []
    async for chunk in engine.stream(request):
        if isinstance(chunk, EngineNotice):
            notices.append(chunk)
        else:
            parts.append(chunk)
    return "".join(parts).strip(), notices


async def complete(engine: Engine, request: MirrorbackRequest) -> str:
    """Collect a whole mirrorback from *engine* (its notices left out)."""
    return (await complete_with_notices(engine, request))[0]
