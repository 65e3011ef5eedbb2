"""The composition root of the engines: the one place that knows every engine and
builds the one the config asks for (the core, the application layer and the sync
service get theirs from here; ``node.engine`` never loads ``node.llm``, which
builds on it).

``offline`` is built in. ``local_llm`` and ``remote_llm`` are ``LLMEngine``s
(node/llm) with the offline engine behind them; building one imports neither
litellm nor anything heavy — that happens on the first model call. The API
key of ``remote_llm`` is read at call time, never here, never stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from crdt.journal import Reflection

from .engine.base import Engine
from .engine.extract import Extraction
from .engine.offline import OfflineEngine

if TYPE_CHECKING:
    from .config import Config
    from .home import Home
    from .llm.client import LLMTarget


def llm_target(config: Config, home: Home) -> LLMTarget:
    """Where the configured model is; for ``remote_llm`` this reads the key."""
    from .llm.client import LLMTarget  # reason: start-up (offline homes never load node.llm)
    from .llm.keys import resolve_api_key

    remote = config.engine_mode == "remote_llm"
    key = resolve_api_key(home.path, config.engine_key_file) if remote else ""
    return LLMTarget(
        model=config.effective_model,
        api_base=config.effective_api_base,
        timeout_s=float(config.engine_timeout_s),
        api_key=key,
        remote=remote,
    )


def engine_for(config: Config, home: Home) -> Engine:
    """The engine for *config*."""
    if config.engine_mode == "offline":
        return OfflineEngine(country=config.country)
    from .llm.engine import LLMEngine  # reason: start-up (offline homes never load node.llm)

    return LLMEngine(
        config.engine_mode,
        lambda: llm_target(config, home),
        model=config.effective_model,
        prompts_dir=home.prompts_dir,
        fallback=config.engine_fallback,
        remote=config.engine_mode == "remote_llm",
        country=config.country,
    )


def enricher_for(
    config: Config, home: Home
) -> Callable[[Reflection, Extraction], Awaitable[Extraction]] | None:
    """LLM extraction on top of the offline one, when the config asks for it."""
    if config.engine_mode == "offline" or config.engine_extraction != "llm":
        return None
    remote = config.engine_mode == "remote_llm"

    async def enrich(reflection: Reflection, offline: Extraction) -> Extraction:
        if reflection.private and (remote or not model_may_read_private(config, home)):
            return offline  # a private reflection goes to a model on this machine only
        # reason: start-up (offline homes never load node.llm)
        from .llm.extraction import llm_extract

        target = llm_target(config, home)
        return await llm_extract(target, reflection, offline, prompts_dir=home.prompts_dir)

    return enrich


def model_may_read_private(config: Config, home: Home) -> bool:
    """Whether the configured model runs on this machine (a loopback address), so
    that private reflections, or anything read from them, may be shown to it."""
    if config.engine_mode != "local_llm":
        return False
    # reason: start-up (offline homes never load node.llm)
    from .llm.client import may_read_private

    try:
        return may_read_private(llm_target(config, home))
    except Exception:  # a model that cannot be reached is shown nothing
        return False


def narrator_for(config: Config, home: Home) -> Callable[[str], Awaitable[str]] | None:
    """An LLM that retells a structured evolution note, for the LLM engines."""
    if config.engine_mode == "offline":
        return None

    async def narrate(note: str) -> str:
        from .llm.client import chat  # reason: start-up (offline homes never load node.llm)
        from .prompts import load_prompt

        target = llm_target(config, home)
        messages = [
            {"role": "system", "content": load_prompt("evolve.md", home.prompts_dir)},
            {"role": "user", "content": note},
        ]
        text = (await chat(target, messages)).strip()
        if not text:
            raise ValueError("the narration was empty")
        return text

    return narrate
