"""Prompt files for the LLM engines, shipped as package data.

``load_prompt(name, override_dir)`` returns ``<override_dir>/<name>`` when the
person put a file of that name in their home's ``prompts/`` folder, else the
file shipped here. Prompts are plain text with ``{placeholders}`` filled by
``str.format_map`` (unknown placeholders are left as they are).
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

log = logging.getLogger("mirror.prompts")

PROMPT_NAMES = ("mirrorback.md", "extract.md", "evolve.md", "ask.md", "digest.md")
MAX_PROMPT_CHARS = 50_000


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def load_prompt(name: str, override_dir: Path | None = None) -> str:
    if name not in PROMPT_NAMES:
        raise ValueError(f"unknown prompt {name!r}")
    if override_dir is not None:
        path = override_dir / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("%s: not used (%s); the built-in prompt applies", path, exc)
        else:
            if text.strip() and len(text) <= MAX_PROMPT_CHARS:
                return text
            log.warning("%s: empty or too long; the built-in prompt applies", path)
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def fill(template: str, **values: str) -> str:
    return template.format_map(_Keep(values))
