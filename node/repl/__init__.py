"""The interactive prompt (``mirror`` with no command): a thin adapter over the
application layer (:mod:`node.app`), drawn with prompt-toolkit."""

from __future__ import annotations

from .prompt import run_repl

__all__ = ["run_repl"]
