"""Changing settings: the mirror mode, the engine, the crisis lines' country, background
sync. Every change is validated, saved to config.json and used from then on; while
config.json is invalid, a change is made to what the file says (so a fix keeps the
person's other settings)."""

from __future__ import annotations

from typing import Any

import trio

from ..config import MIRROR_MODES, Config
from ..core import MirrorCore
from ..engine.safety.helplines import helplines
from ..errors import MirrorError, UsageError
from ..llm.client import litellm_install_command, litellm_installed

ENGINE_CHOICES = {"offline": "offline", "local": "local_llm", "remote": "remote_llm"}
COUNTRY_NONE_WORDS = frozenset({"none", "international", "clear", "-", "unset"})


async def save(core: MirrorCore, new: Config) -> Config:
    await trio.to_thread.run_sync(core.save_config, new)
    return new


async def set_mode(core: MirrorCore, mode: str) -> Config:
    if mode not in MIRROR_MODES:
        raise UsageError(f"the mode is one of {', '.join(MIRROR_MODES)} (got {mode!r})")
    return await save(core, core.config_to_change().with_changes(mirror_mode=mode))


async def set_engine(
    core: MirrorCore,
    choice: str,
    *,
    model: str | None = None,
    api_base: str | None = None,
    timeout_s: float | None = None,
    fallback: bool | None = None,
    extraction: str | None = None,
) -> Config:
    """Switch the engine (``offline``, ``local``, ``remote``) and use it from now on."""
    if choice not in ENGINE_CHOICES:
        raise UsageError(f"the engine is one of {', '.join(ENGINE_CHOICES)} (got {choice!r})")
    mode = ENGINE_CHOICES[choice]
    if mode != "offline" and not litellm_installed():
        raise MirrorError(f"the {choice} engine talks to models through litellm, which is "
                          f"not installed: {litellm_install_command()}")
    base = core.config_to_change()
    changes: dict[str, Any] = {"engine_mode": mode}
    if mode != base.engine_mode:
        changes.update(engine_model="", engine_api_base="")  # the new mode's defaults
    if model is not None:
        changes["engine_model"] = model
    if api_base is not None:
        changes["engine_api_base"] = api_base
    if timeout_s is not None:
        changes["engine_timeout_s"] = float(timeout_s)
    if fallback is not None:
        changes["engine_fallback"] = fallback
    if extraction is not None:
        changes["engine_extraction"] = extraction
    return await save(core, base.with_changes(**changes))


async def set_country(core: MirrorCore, value: str) -> str:
    """Set (or, with "none", clear) the country whose crisis lines a crisis reply names;
    returns its code, "" when cleared."""
    if value.strip().lower() in COUNTRY_NONE_WORDS:
        code = ""
    else:
        found = helplines().find(value)
        if found is None:
            raise UsageError(f"no crisis lines for {value!r} in the table; "
                             "see: mirror config country --list (or 'none' for the "
                             "international directory)")
        code = found.code
    await save(core, core.config_to_change().with_changes(country=code))
    return code


async def set_sync_enabled(core: MirrorCore, on: bool) -> Config:
    return await save(core, core.config_to_change().with_changes(sync_enabled=on))


async def change(core: MirrorCore, **changes: Any) -> Config:
    """Change any settings of config.json at once (validated, saved, used from now on)."""
    return await save(core, core.config_to_change().with_changes(**changes))
