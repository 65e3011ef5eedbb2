"""The ``mirror`` command: a thin adapter that turns arguments into calls of the
application layer (:mod:`node.app`) and its results into lines of text.

``main`` (in :mod:`node.cli.main`) builds the parser from the command table and
imports only the module of the command that runs.
"""

from __future__ import annotations

from .main import main

__all__ = ["main"]
